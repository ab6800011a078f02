//! QR codes of the pairing screen, as terminal text and as PNG.

use crm_core::{Error, Result};
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module in the PNG.
const SCALE: usize = 8;
/// Quiet zone around the code, in modules.
const MARGIN: usize = 4;

fn code(text: &str) -> Result<QrCode> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
        .map_err(|e| Error::validation("qr", format!("cannot encode this QR text: {e}")))
}

/// The QR code as text for a terminal (two rows of modules per line).
pub fn to_text(text: &str) -> Result<String> {
    Ok(code(text)?.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build())
}

/// The QR code as a grayscale PNG image.
pub fn to_png(text: &str) -> Result<Vec<u8>> {
    let code = code(text)?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * MARGIN) * SCALE;
    // One filter byte (0: none) per row, then one byte per pixel.
    let mut raw = Vec::with_capacity(side * (side + 1));
    for y in 0..side {
        raw.push(0u8);
        let my = (y / SCALE).checked_sub(MARGIN).filter(|v| *v < width);
        for x in 0..side {
            let mx = (x / SCALE).checked_sub(MARGIN).filter(|v| *v < width);
            let dark = matches!((mx, my), (Some(mx), Some(my)) if colors[my * width + mx] == Color::Dark);
            raw.push(if dark { 0 } else { 255 });
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &raw).map_err(png_error)?;
    let data = z.finish().map_err(png_error)?;
    let side = u32::try_from(side).map_err(|_| Error::validation("qr", "too large"))?;
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&side.to_be_bytes());
    // Bit depth 8, colour type 0 (grayscale), deflate, no filter set, no interlace.
    header.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &data);
    chunk(&mut png, b"IEND", &[]);
    Ok(png)
}

fn png_error(e: std::io::Error) -> Error {
    Error::Config { message: format!("cannot compress the QR image: {e}") }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    // Chunks are far below 4 GiB: the QR image is at most a few hundred KiB.
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_has_the_signature_the_size_and_valid_checksums() {
        let png = to_png("2@abc,def,ghi,jkl").unwrap_or_default();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        let side = u32::from_be_bytes([png[16], png[17], png[18], png[19]]) as usize;
        // The code's modules with a 4-module margin on each side, 8 px each.
        let width = code("2@abc,def,ghi,jkl").map(|c| c.width()).unwrap_or_default();
        assert_eq!(width, 21, "17 bytes fit a version-1 code at level L");
        assert_eq!(side, (width + 2 * MARGIN) * SCALE);
        // Walk the chunks: every CRC matches, the last one is IEND.
        let mut at = 8;
        let mut kinds = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
            let body = &png[at + 4..at + 8 + len];
            let crc =
                u32::from_be_bytes([png[at + 8 + len], png[at + 9 + len], png[at + 10 + len], png[at + 11 + len]]);
            assert_eq!(crc32fast::hash(body), crc);
            kinds.push(String::from_utf8_lossy(&body[..4]).into_owned());
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        // The pixels inflate to one filter byte plus one byte per pixel per row.
        let idat_len = u32::from_be_bytes([png[33], png[34], png[35], png[36]]) as usize;
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&png[41..41 + idat_len]), &mut raw)
            .unwrap_or_default();
        assert_eq!(raw.len(), side * (side + 1));
    }

    #[test]
    fn text_draws_the_code_and_too_long_text_is_refused() {
        let text = to_text("hello").unwrap_or_default();
        assert!(text.lines().count() > 10);
        assert!(text.contains('█') || text.contains('▀'));
        assert!(to_text(&"x".repeat(5000)).is_err());
    }
}
