//! How target bytes travel inside WebSocket messages: `binary` (raw binary frames) or
//! `base64` (text frames, each a complete padded base64 string), chosen by subprotocol.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The session's encoding, negotiated in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Binary,
    Base64,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Base64 => "base64",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    #[error("invalid base64 data in a text message")]
    InvalidBase64,
    #[error("base64 message does not end on a 4-character boundary")]
    TruncatedBase64,
}

/// Streaming decoder for base64 messages from the client.
///
/// Decodes each complete 4-character group as soon as it arrives, so a base64 message
/// is never held whole; the few characters of an unfinished group are carried over to
/// the next chunk. Padding may only end a message.
#[derive(Debug, Default)]
pub struct Base64Decoder {
    carry: [u8; 4],
    carried: usize,
    /// The message already had its padding: nothing may follow.
    padded: bool,
}

impl Base64Decoder {
    /// Decodes `input`, appending the bytes to `out`. `last` marks the end of the message.
    pub fn feed(&mut self, mut input: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), EncodingError> {
        if !input.is_empty() && self.padded {
            return Err(EncodingError::InvalidBase64);
        }
        if self.carried > 0 {
            let take = (4 - self.carried).min(input.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&input[..take]);
            self.carried += take;
            input = &input[take..];
            if self.carried == 4 {
                let group = self.carry;
                self.carried = 0;
                self.decode_groups(&group, out)?;
                if !input.is_empty() && self.padded {
                    return Err(EncodingError::InvalidBase64);
                }
            }
        }
        let whole = input.len() / 4 * 4;
        self.decode_groups(&input[..whole], out)?;
        let rest = &input[whole..];
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried += rest.len();
        if last {
            let truncated = self.carried != 0;
            *self = Self::default();
            if truncated {
                return Err(EncodingError::TruncatedBase64);
            }
        }
        Ok(())
    }

    fn decode_groups(&mut self, groups: &[u8], out: &mut Vec<u8>) -> Result<(), EncodingError> {
        if groups.is_empty() {
            return Ok(());
        }
        let start = out.len();
        out.resize(start + groups.len() / 4 * 3, 0);
        let n = BASE64.decode_slice(groups, &mut out[start..]).map_err(|_| EncodingError::InvalidBase64)?;
        out.truncate(start + n);
        self.padded = groups.ends_with(b"=");
        Ok(())
    }
}

/// Base64-encodes `input` into `out` (which must hold `encoded_len(input.len())` bytes);
/// returns the encoded length.
pub fn encode_base64(input: &[u8], out: &mut [u8]) -> usize {
    BASE64.encode_slice(input, out).expect("output sized by encoded_len")
}

/// Length of the padded base64 encoding of `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_any_split() {
        let text = b"SGVsbG8sIHdvcmxkIQ=="; // "Hello, world!"
        for split in 0..=text.len() {
            let mut d = Base64Decoder::default();
            let mut out = Vec::new();
            d.feed(&text[..split], false, &mut out).unwrap();
            d.feed(&text[split..], true, &mut out).unwrap();
            assert_eq!(out, b"Hello, world!", "split {split}");
        }
    }

    #[test]
    fn messages_are_independent() {
        let mut d = Base64Decoder::default();
        let mut out = Vec::new();
        d.feed(b"QQ==", true, &mut out).unwrap();
        d.feed(b"Qg==", true, &mut out).unwrap();
        assert_eq!(out, b"AB");
    }

    #[test]
    fn rejects_bad_base64() {
        let mut out = Vec::new();
        assert_eq!(Base64Decoder::default().feed(b"QQ", true, &mut out), Err(EncodingError::TruncatedBase64));
        assert_eq!(Base64Decoder::default().feed(b"Q!==", true, &mut out), Err(EncodingError::InvalidBase64));
        // Padding in the middle of a message, in one chunk or across two.
        assert_eq!(Base64Decoder::default().feed(b"QQ==QQ==", true, &mut out), Err(EncodingError::InvalidBase64));
        let mut d = Base64Decoder::default();
        d.feed(b"QQ==", false, &mut out).unwrap();
        assert_eq!(d.feed(b"QQ==", true, &mut out), Err(EncodingError::InvalidBase64));
    }

    #[test]
    fn encodes_padded() {
        let mut out = [0u8; 8];
        assert_eq!(encoded_len(4), 8);
        let n = encode_base64(b"\x00\xff\x10\x20", &mut out);
        assert_eq!(&out[..n], b"AP8QIA==");
    }
}
