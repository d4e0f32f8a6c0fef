//! Content-Encoding: gzip, deflate, brotli (`br`) and zstd bodies are
//! decoded before comparing, into at most a given number of bytes, so a
//! bomb stops early: every decoder streams into the cap and is abandoned at
//! its first byte beyond it.
//!
//! Brotli and zstd are decoded by two pure-Rust, decode-only crates with no
//! dependencies of their own worth the name (`brotli-decompressor`, the
//! decoder half of the Dropbox port; `ruzstd` without its checksum hash):
//! no C toolchain for wasm32, and the module grows by what they decode with
//! (measured in the README, "Comparison": +289 KB, of
//! which 123 KB are brotli's built-in dictionary).

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
    /// A coding this filter does not decode (compress, ...): the body is
    /// compared as it is, and so is the header.
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
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
            } else if token.eq_ignore_ascii_case(b"br") {
                codings.push(Coding::Brotli);
            } else if token.eq_ignore_ascii_case(b"zstd") {
                codings.push(Coding::Zstd);
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

/// A body with the codings of its Content-Encoding header undone, at most
/// `limit` bytes; `None` for a coding this filter does not decode. The
/// comparison's own decoding, for the fuzz target and tests.
pub fn decode_body(content_encoding: Option<&[u8]>, body: &[u8], limit: usize) -> Option<Result<Vec<u8>, DecodeError>> {
    match Encoding::of(content_encoding) {
        Encoding::Known(codings) => Some(decode(&codings, body, limit).map(Cow::into_owned)),
        Encoding::Unsupported => None,
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
            Coding::Brotli => unbrotli(&current, limit)?,
            Coding::Zstd => unzstd(&current, limit)?,
        };
        current = Cow::Owned(decoded);
    }
    Ok(current)
}

/// HTTP's `deflate` is zlib-wrapped (RFC 9110 §8.4.1.2), but some servers
/// send a raw deflate stream: accept both.
#[inline(never)] // compiled alone by V8: crate doc, "Function size"
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
#[inline(never)] // compiled alone by V8: crate doc, "Function size"
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
    // `max(64).min(cap)`, not `clamp(64, cap)`: a cap below 64 (a small
    // `max_body_bytes`) made clamp panic (found by the decode fuzz target).
    let mut out = vec![0; input.len().saturating_mul(4).max(64).min(cap)];
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

/// Reads `reader` to its end into at most `limit` bytes, in chunks: the
/// decoder behind it decodes no further than the chunk it is asked for.
fn read_capped(mut reader: impl std::io::Read, out: &mut Vec<u8>, limit: usize) -> Result<(), DecodeError> {
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if out.len().saturating_add(n) > limit {
                    return Err(DecodeError::TooLarge);
                }
                out.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(DecodeError::Invalid),
        }
    }
}

/// RFC 7932, with the stream API so that data after the end of the stream
/// is seen (and refused). The decoder's ring buffer is the stream's
/// window, at most 16 MiB (brotli's largest; the large-window extension is
/// not accepted).
#[inline(never)] // compiled alone by V8: crate doc, "Function size"
fn unbrotli(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
    let mut state = BrotliState::new(
        StandardAlloc::default(),
        StandardAlloc::default(),
        StandardAlloc::default(),
    );
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 4096];
    let (mut available_in, mut input_offset) = (body.len(), 0);
    let mut total_out = 0;
    loop {
        let (mut available_out, mut output_offset) = (chunk.len(), 0);
        let result = BrotliDecompressStream(
            &mut available_in,
            &mut input_offset,
            body,
            &mut available_out,
            &mut output_offset,
            &mut chunk,
            &mut total_out,
            &mut state,
        );
        if out.len().saturating_add(output_offset) > limit {
            return Err(DecodeError::TooLarge);
        }
        out.extend_from_slice(chunk.get(..output_offset).unwrap_or_default());
        match result {
            BrotliResult::NeedsMoreOutput => {}
            BrotliResult::ResultSuccess if input_offset == body.len() => return Ok(out),
            // Truncated, corrupt, or data after the end of the stream.
            _ => return Err(DecodeError::Invalid),
        }
    }
}

/// zstd (RFC 8878): frames one after another, skippable frames skipped.
///
/// The decoder reserves the frame's declared window up front, and a
/// 13-byte header may declare 100 MiB or more: a window above
/// [`MAX_ZSTD_WINDOW`] is refused before anything is allocated (as too
/// large: the comparison carries no information).
#[inline(never)] // compiled alone by V8: crate doc, "Function size"
fn unzstd(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = body;
    if rest.is_empty() {
        return Err(DecodeError::Invalid);
    }
    while !rest.is_empty() {
        let magic = rest
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or(DecodeError::Invalid)?;
        if magic & 0xffff_fff0 == 0x184d_2a50 {
            let length = rest
                .get(4..8)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes)
                .ok_or(DecodeError::Invalid)?;
            let skip = usize::try_from(length).unwrap_or(usize::MAX).saturating_add(8);
            rest = rest.get(skip..).ok_or(DecodeError::Invalid)?;
            continue;
        }
        if zstd_window(rest).ok_or(DecodeError::Invalid)? > MAX_ZSTD_WINDOW {
            return Err(DecodeError::TooLarge);
        }
        let decoder = ruzstd::decoding::StreamingDecoder::new(&mut rest).map_err(|_| DecodeError::Invalid)?;
        read_capped(decoder, &mut out, limit)?;
    }
    Ok(out)
}

/// The largest zstd window decoded: 8 MiB, zstd's own window at its level
/// 19 (level 3, servers' usual, uses 2 MiB at most; a small body declares
/// no more than its size).
const MAX_ZSTD_WINDOW: u64 = 8 << 20;

/// The window a zstd frame declares (RFC 8878 §3.1.1.1), from its header.
fn zstd_window(frame: &[u8]) -> Option<u64> {
    if frame.get(..4)? != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let descriptor = *frame.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let window = *frame.get(5)?;
        let base = 1u64 << (10 + u64::from(window >> 3));
        return Some(base + base / 8 * u64::from(window & 7));
    }
    // Single segment: the window is the content size, which follows the
    // dictionary id.
    let dictionary_bytes = match descriptor & 3 {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => 4,
    };
    let size_bytes = match descriptor >> 6 {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let at = 5 + dictionary_bytes;
    let field = frame.get(at..at + size_bytes)?;
    let mut bytes = [0u8; 8];
    bytes.get_mut(..size_bytes)?.copy_from_slice(field);
    let size = u64::from_le_bytes(bytes);
    Some(if size_bytes == 2 { size + 256 } else { size })
}
