//! The `shadowd` binary; the command line and its commands live in the library's `cmd`.

fn main() {
    shadowd::cmd::main()
}
