//! Changed parts of the desktop as images a browser decodes natively: PNG (lossless, fast
//! compression) for what desktops mostly show (flat colours, text, window frames), JPEG for
//! large photo-like regions (photos, video, gradients with noise), where PNG is several
//! times bigger.

use std::collections::HashSet;

/// Below this many pixels PNG is always used: small regions are cheap either way, and text
/// must stay sharp.
const MIN_JPEG_PIXELS: usize = 128 * 128;

/// JPEG quality: artefacts hardly visible on photos, about a third of PNG's size.
const JPEG_QUALITY: u8 = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

/// Whether RGB pixels look like a photo: many distinct colours among up to 32×32
/// points sampled on a grid (a desktop's UI has few; a photo has nearly one per point).
pub(crate) fn photo_like(pixels: &[u8], width: usize, height: usize) -> bool {
    if width * height < MIN_JPEG_PIXELS || pixels.len() < width * height * 3 {
        return false;
    }
    let (step_x, step_y) = ((width / 32).max(1), (height / 32).max(1));
    let mut colours = HashSet::with_capacity(1024);
    let mut samples = 0usize;
    for y in (0..height).step_by(step_y) {
        for x in (0..width).step_by(step_x) {
            let i = (y * width + x) * 3;
            if let Some(p) = pixels.get(i..i + 3) {
                colours.insert([p[0], p[1], p[2]]);
                samples += 1;
            }
        }
    }
    colours.len() * 2 > samples
}

/// Encodes RGB pixels in the format that suits them. PNG uses its fastest setting (the Up
/// filter, fdeflate's ultra-fast mode): measured, per-row adaptive filtering was about half
/// of the PNG time for a 1920×1080 desktop, and the files grew little.
pub(crate) fn encode(pixels: &[u8], width: u16, height: u16) -> Result<(ImageFormat, Vec<u8>), String> {
    if photo_like(pixels, usize::from(width), usize::from(height)) {
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY)
            .encode(pixels, width, height, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| e.to_string())?;
        return Ok((ImageFormat::Jpeg, out));
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, u32::from(width), u32::from(height));
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(pixels).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok((ImageFormat::Png, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(width: usize, height: usize, pixel: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
        let mut out = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                out.extend_from_slice(&pixel(x, y));
            }
        }
        out
    }

    #[test]
    fn ui_stays_png_and_photos_become_smaller_jpegs() {
        // A window: flat background, a title bar, "text" in two colours.
        let ui = image(400, 300, |x, y| match (x, y) {
            (_, 0..20) => [40, 60, 120],
            (x, y) if (x / 3 + y / 5) % 7 == 0 => [0, 0, 0],
            _ => [250, 250, 250],
        });
        assert_eq!(encode(&ui, 400, 300).map(|e| e.0), Ok(ImageFormat::Png));
        // A "photo": smooth colour fields with grain.
        let grain = |x: usize, y: usize| ((x * 7919 + y * 104_729) % 13) as u8;
        let photo = image(400, 300, |x, y| {
            [
                ((x * 255 / 400) as u8).saturating_add(grain(x, y)),
                (y * 255 / 300) as u8,
                ((x + y) % 200) as u8 + grain(y, x),
            ]
        });
        let (format, jpeg) = encode(&photo, 400, 300).expect("encodes");
        assert_eq!(format, ImageFormat::Jpeg);
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        let png = encode(&photo[..], 400, 300).map(|_| ()).and_then(|()| {
            let mut out = Vec::new();
            let mut e = png::Encoder::new(&mut out, 400, 300);
            e.set_color(png::ColorType::Rgb);
            e.set_compression(png::Compression::Fast);
            let mut w = e.write_header().map_err(|e| e.to_string())?;
            w.write_image_data(&photo).map_err(|e| e.to_string())?;
            w.finish().map_err(|e| e.to_string())?;
            Ok(out)
        });
        let png = png.expect("png");
        assert!(jpeg.len() * 2 < png.len(), "jpeg {} bytes, png {} bytes", jpeg.len(), png.len());
        // Small regions stay PNG whatever they show.
        let small = image(64, 64, |x, y| [(x * 4) as u8, (y * 4) as u8, (x * y) as u8]);
        assert_eq!(encode(&small, 64, 64).map(|e| e.0), Ok(ImageFormat::Png));
    }
}
