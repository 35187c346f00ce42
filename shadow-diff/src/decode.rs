//! A response body as its sender meant it: `Content-Encoding` undone (gzip, deflate, br,
//! stacked in order), within a size limit, so a body that inflates without end costs no
//! more than the limit.

use std::io::Read as _;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// An encoding shadowd does not undo (`compress`, `zstd`, …).
    Unsupported(String),
    /// The bytes are not what their encoding says.
    Corrupt(String),
    /// Decoded, the body is longer than the limit.
    TooLong(usize),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Unsupported(coding) => write!(f, "content-coding {coding} not decoded"),
            DecodeError::Corrupt(coding) => write!(f, "the body is not valid {coding}"),
            DecodeError::TooLong(limit) => write!(f, "decoded, the body exceeds {limit} bytes"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The codings of a `Content-Encoding` value, in the order they were applied.
fn codings(content_encoding: Option<&str>) -> Vec<String> {
    content_encoding
        .unwrap_or("")
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect()
}

/// A reader of `body` with `codings` undone (the last applied is undone first).
fn reader<'a>(
    body: &'a [u8],
    codings: &[String],
) -> Result<Box<dyn std::io::Read + 'a>, DecodeError> {
    let mut reader: Box<dyn std::io::Read + 'a> = Box::new(body);
    for coding in codings.iter().rev() {
        reader = match coding.as_str() {
            "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            "deflate" => Box::new(flate2::read::ZlibDecoder::new(reader)),
            "br" => Box::new(brotli::Decompressor::new(reader, 4096)),
            other => return Err(DecodeError::Unsupported(other.to_string())),
        };
    }
    Ok(reader)
}

/// The coding named in a read error: the outermost one (which the bytes failed) when
/// several are stacked.
fn corrupt(codings: &[String]) -> DecodeError {
    DecodeError::Corrupt(codings.last().cloned().unwrap_or_default())
}

/// `body` with the codings of `content_encoding` (a `Content-Encoding` value, codings in the
/// order they were applied) undone, at most `limit` bytes.
pub fn decoded_body(
    body: &[u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    let codings = codings(content_encoding);
    let mut out = Vec::new();
    // One byte past the limit tells a body at the limit from a longer one.
    reader(body, &codings)?
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| corrupt(&codings))?;
    if out.len() > limit {
        return Err(DecodeError::TooLong(limit));
    }
    Ok(out)
}

/// The length and SHA-256 of `body` decoded, read through without keeping it, up to `cap`
/// bytes (a bigger one is [`DecodeError::TooLong`]): how bodies over the diff's limit are
/// compared.
pub fn decoded_digest(
    body: &[u8],
    content_encoding: Option<&str>,
    cap: u64,
) -> Result<(u64, [u8; 32]), DecodeError> {
    use sha2::Digest as _;
    let codings = codings(content_encoding);
    let mut reader = reader(body, &codings)?.take(cap + 1);
    let mut hasher = sha2::Sha256::new();
    let mut buffer = [0u8; 16 << 10];
    let mut length = 0u64;
    loop {
        let read = reader.read(&mut buffer).map_err(|_| corrupt(&codings))?;
        if read == 0 {
            break;
        }
        length += read as u64;
        hasher.update(&buffer[..read]);
    }
    if length > cap {
        return Err(DecodeError::TooLong(
            usize::try_from(cap).unwrap_or(usize::MAX),
        ));
    }
    Ok((length, hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn br(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            writer.write_all(data).unwrap();
        }
        out
    }

    #[test]
    fn every_coding_and_a_stack_of_them_is_undone() {
        let body = br#"{"a":1}"#;
        assert_eq!(decoded_body(body, None, 100).unwrap(), body);
        assert_eq!(decoded_body(body, Some("identity"), 100).unwrap(), body);
        assert_eq!(decoded_body(&gzip(body), Some("gzip"), 100).unwrap(), body);
        assert_eq!(
            decoded_body(&gzip(body), Some("X-GZIP"), 100).unwrap(),
            body
        );
        assert_eq!(
            decoded_body(&deflate(body), Some("deflate"), 100).unwrap(),
            body
        );
        assert_eq!(decoded_body(&br(body), Some("br"), 100).unwrap(), body);
        // gzip applied first, then br: br is undone first.
        let stacked = br(&gzip(body));
        assert_eq!(decoded_body(&stacked, Some("gzip, br"), 100).unwrap(), body);
    }

    #[test]
    fn bad_bytes_unknown_codings_and_bombs_are_errors() {
        assert_eq!(
            decoded_body(b"not gzip", Some("gzip"), 100),
            Err(DecodeError::Corrupt("gzip".into()))
        );
        assert_eq!(
            decoded_body(b"x", Some("zstd"), 100),
            Err(DecodeError::Unsupported("zstd".into()))
        );
        // 10 MiB of zeros in a few KiB: decoding stops one byte past the limit.
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert_eq!(
            decoded_body(&bomb, Some("gzip"), 1 << 20),
            Err(DecodeError::TooLong(1 << 20))
        );
        assert_eq!(
            decoded_body(&[0; 11], None, 10),
            Err(DecodeError::TooLong(10))
        );
        let exact = gzip(&[7; 10]);
        assert_eq!(decoded_body(&exact, Some("gzip"), 10).unwrap(), [7; 10]);
    }

    #[test]
    fn a_digest_reads_a_body_through_whatever_its_length() {
        use sha2::Digest as _;
        let body = vec![3u8; 3 << 20];
        let (length, digest) = decoded_digest(&gzip(&body), Some("gzip"), 64 << 20).unwrap();
        assert_eq!(length, 3 << 20);
        assert_eq!(digest, <[u8; 32]>::from(sha2::Sha256::digest(&body)));
        assert_eq!(
            decoded_digest(&body, None, 64 << 20).unwrap(),
            (length, digest)
        );
        assert!(decoded_digest(&gzip(&body), Some("gzip"), 1 << 20).is_err());
    }
}
