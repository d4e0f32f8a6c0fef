//! Content-Encoding: gzip and deflate bodies are decoded before comparing,
//! into at most a given number of bytes, so a gzip bomb stops early.

use std::borrow::Cow;

use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// Why a body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The decoded body would exceed the limit.
    TooLarge,
    /// Not valid gzip or deflate data (corrupt, truncated).
    Invalid,
}

/// How a body is encoded, from its Content-Encoding header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Encoding {
    /// The codings to undo, in the order they were applied (`gzip`,
    /// `x-gzip`, `deflate`; `identity` is left out).
    Known(Vec<Coding>),
    /// A coding this filter does not decode (br, zstd, ...): the body is
    /// compared as it is, and so is the header.
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coding {
    Gzip,
    Deflate,
}

/// At most this many codings stacked on one body.
const MAX_CODINGS: usize = 4;

impl Encoding {
    pub(super) fn of(header: Option<&[u8]>) -> Encoding {
        let mut codings = Vec::new();
        for token in header.unwrap_or_default().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() || token.eq_ignore_ascii_case(b"identity") {
                continue;
            }
            if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
                codings.push(Coding::Gzip);
            } else if token.eq_ignore_ascii_case(b"deflate") {
                codings.push(Coding::Deflate);
            } else {
                return Encoding::Unsupported;
            }
        }
        if codings.len() > MAX_CODINGS {
            return Encoding::Unsupported;
        }
        Encoding::Known(codings)
    }
}

/// The body with its codings undone, at most `limit` bytes.
pub(super) fn decode<'a>(codings: &[Coding], body: &'a [u8], limit: usize) -> Result<Cow<'a, [u8]>, DecodeError> {
    let mut current = Cow::Borrowed(body);
    // Codings are listed in the order they were applied: undo the last first.
    for coding in codings.iter().rev() {
        let decoded = match coding {
            Coding::Gzip => gunzip(&current, limit)?,
            Coding::Deflate => inflate_http_deflate(&current, limit)?,
        };
        current = Cow::Owned(decoded);
    }
    Ok(current)
}

/// HTTP's `deflate` is zlib-wrapped (RFC 9110 §8.4.1.2), but some servers
/// send a raw deflate stream: accept both.
fn inflate_http_deflate(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let zlib_header = body.len() >= 2
        && body.first().is_some_and(|&cmf| cmf & 0x0f == 8)
        && u16::from_be_bytes([body.first().copied().unwrap_or(0), body.get(1).copied().unwrap_or(0)]) % 31 == 0;
    let flags = if zlib_header {
        inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
    } else {
        0
    };
    let (out, consumed) = inflate(body, flags, limit)?;
    if consumed != body.len() {
        return Err(DecodeError::Invalid);
    }
    Ok(out)
}

/// RFC 1952, one member or several concatenated. The trailer's length is
/// checked; its CRC-32 is not (the deflate stream's own structure already
/// catches truncation and most corruption).
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let start = member_data_start(rest).ok_or(DecodeError::Invalid)?;
        let data = rest.get(start..).ok_or(DecodeError::Invalid)?;
        let (member, consumed) = inflate(data, 0, limit.saturating_sub(out.len()))?;
        let trailer = data.get(consumed..consumed + 8).ok_or(DecodeError::Invalid)?;
        let size = trailer
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or(DecodeError::Invalid)?;
        if size != member.len() as u32 {
            return Err(DecodeError::Invalid);
        }
        out.extend_from_slice(&member);
        rest = data.get(consumed + 8..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(out);
        }
    }
}

/// The offset of a gzip member's deflate data, after its header.
fn member_data_start(member: &[u8]) -> Option<usize> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if member.get(..3)? != [0x1f, 0x8b, 8] {
        return None;
    }
    let flags = *member.get(3)?;
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = u16::from_le_bytes([*member.get(at)?, *member.get(at + 1)?]);
        at += 2 + usize::from(len);
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += member.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    (at <= member.len()).then_some(at)
}

/// Inflates one stream into at most `limit` bytes; returns the output and
/// the input bytes consumed. The buffer grows by doubling, so a bomb costs
/// at most `limit` bytes of memory and the work to fill them.
fn inflate(input: &[u8], flags: u32, limit: usize) -> Result<(Vec<u8>, usize), DecodeError> {
    let flags = flags | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    // One byte beyond the limit tells "exactly full" from "too large".
    let cap = limit.saturating_add(1);
    let mut out = vec![0; input.len().saturating_mul(4).clamp(64, cap)];
    let mut decompressor = Box::<DecompressorOxide>::default();
    let mut consumed = 0;
    let mut written = 0;
    loop {
        let remaining = input.get(consumed..).unwrap_or_default();
        let (status, used, produced) = decompress(&mut decompressor, remaining, &mut out, written, flags);
        consumed += used;
        written += produced;
        if written > limit {
            return Err(DecodeError::TooLarge);
        }
        match status {
            TINFLStatus::Done => {
                out.truncate(written);
                return Ok((out, consumed));
            }
            TINFLStatus::HasMoreOutput => {
                if out.len() >= cap {
                    return Err(DecodeError::TooLarge);
                }
                let grown = out.len().saturating_mul(2).min(cap);
                out.resize(grown, 0);
            }
            _ => return Err(DecodeError::Invalid),
        }
    }
}
