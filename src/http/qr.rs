//! QR codes drawn on the server as SVG (no external service, no script needed to draw them).

/// `data` as an SVG QR code (medium error correction), or `None` when it is too long for one.
pub fn svg(data: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_becomes_an_svg_drawing() {
        let svg = super::svg("https://id.example.gov.cn/device?user_code=BCDF-GHJK").unwrap_or_default();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
        assert!(!svg.contains("user_code"), "the data is drawn, not written out");
    }
}
