//! The input layout shared by the streaming targets, so that the fuzzer chooses where a
//! stream is cut into reads as well as what it holds.
//!
//! ```text
//! byte 0:   bits 0-3  n, how many chunk-size bytes follow (0: the stream is one chunk)
//!           bit 4     end every message with an extra empty chunk (a `last` with no bytes)
//!           bit 5     the stream holds several messages, split on `separator`
//!                     (base64_decoder and utf8_validator only; frame_decoder ignores it)
//! bytes 1..=n         chunk sizes, used in turn and cycled (0: an empty chunk)
//! the rest            the stream
//! ```
//!
//! An empty input is an empty stream in one chunk.

#![allow(dead_code)]

pub struct Input<'a> {
    sizes: &'a [u8],
    pub trailing_empty: bool,
    pub multi: bool,
    pub stream: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn parse(data: &'a [u8]) -> Self {
        let Some((&first, rest)) = data.split_first() else {
            return Self { sizes: &[], trailing_empty: false, multi: false, stream: &[] };
        };
        let n = usize::from(first & 0x0F).min(rest.len());
        Self { sizes: &rest[..n], trailing_empty: first & 0x10 != 0, multi: first & 0x20 != 0, stream: &rest[n..] }
    }

    /// The messages of the stream: the whole stream, or its pieces between `separator`s.
    pub fn messages(&self, separator: u8) -> Vec<&'a [u8]> {
        if self.multi { self.stream.split(|&b| b == separator).collect() } else { vec![self.stream] }
    }

    /// Cuts `bytes` into chunks by the chunk sizes, starting at `*cursor` in their cycle
    /// (so successive messages continue it). Always returns at least one chunk; empty
    /// chunks appear where a size is 0, and at the end if `trailing_empty`.
    pub fn chunks<'b>(&self, bytes: &'b [u8], cursor: &mut usize) -> Vec<&'b [u8]> {
        let mut out = Vec::new();
        let mut rest = bytes;
        if self.sizes.is_empty() {
            out.push(rest);
            rest = &[];
        }
        // A whole cycle of sizes that moves no byte would never end: then take the rest.
        let mut idle = 0;
        while !rest.is_empty() {
            let size = usize::from(self.sizes[*cursor % self.sizes.len()]);
            *cursor += 1;
            if size == 0 {
                idle += 1;
                if idle > self.sizes.len() {
                    out.push(rest);
                    break;
                }
            } else {
                idle = 0;
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            out.push(chunk);
            rest = tail;
        }
        if out.is_empty() || self.trailing_empty {
            out.push(&[]);
        }
        out
    }
}
