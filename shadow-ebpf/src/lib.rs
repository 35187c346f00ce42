//! Empty library target: lets `shadow-user` name this crate as a build dependency, so cargo
//! rebuilds the embedded TC program whenever its sources change.
#![no_std]
