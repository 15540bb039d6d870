//! The little SDP text work str0m does not do for us: giving the fixed-mid offer its codec
//! lines, and reading the candidates of an answer. Pure functions over text; odd input gives
//! `None` or nothing, never a panic.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// One `m=` section: its lines, the `m=` line first.
fn sections(sdp: &str) -> (Vec<&str>, Vec<Vec<&str>>) {
    let mut session = Vec::new();
    let mut media: Vec<Vec<&str>> = Vec::new();
    for line in sdp.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            media.push(vec![line]);
        } else if let Some(section) = media.last_mut() {
            section.push(line);
        } else {
            session.push(line);
        }
    }
    (session, media)
}

/// The media kind of an `m=` line (`video`, `audio`, ...).
fn kind(m_line: &str) -> &str {
    m_line
        .trim_start_matches("m=")
        .split_whitespace()
        .next()
        .unwrap_or("")
}

fn is_codec_line(line: &str) -> bool {
    ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
        .iter()
        .any(|prefix| line.starts_with(prefix))
}

/// Gives each media section of `offer` the `m=` line and codec lines (`rtpmap`, `fmtp`,
/// `rtcp-fb`) of the section of the same kind in `template`, and bundles every mid of `offer`.
/// `None` if the template lacks a kind the offer has.
pub(crate) fn splice_codecs(offer: &str, template: &str) -> Option<String> {
    let (_, template_media) = sections(template);
    let codecs: HashMap<&str, (&str, Vec<&str>)> = template_media
        .iter()
        .map(|section| {
            let lines = section
                .iter()
                .copied()
                .filter(|l| is_codec_line(l))
                .collect();
            (kind(section[0]), (section[0], lines))
        })
        .collect();
    let (session, media) = sections(offer);
    let mids: Vec<&str> = media
        .iter()
        .filter_map(|section| section.iter().find_map(|l| l.strip_prefix("a=mid:")))
        .collect();
    let mut out = Vec::new();
    for line in session {
        if line.starts_with("a=group:BUNDLE") {
            out.push(format!("a=group:BUNDLE {}", mids.join(" ")));
        } else {
            out.push(line.to_owned());
        }
    }
    for section in media {
        let (m_line, codec_lines) = codecs.get(kind(section[0]))?;
        out.push((*m_line).to_owned());
        out.extend(
            section[1..]
                .iter()
                .filter(|l| !is_codec_line(l))
                .map(|l| (*l).to_owned()),
        );
        out.extend(codec_lines.iter().map(|l| (*l).to_owned()));
    }
    let mut sdp = out.join("\r\n");
    sdp.push_str("\r\n");
    Some(sdp)
}

/// The UDP addresses of the `a=candidate` lines of an SDP.
pub(crate) fn candidate_addrs(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|line| line.trim().strip_prefix("a=candidate:"))
        .filter_map(|candidate| {
            // foundation component transport priority address port "typ" type ...
            let fields: Vec<&str> = candidate.split_whitespace().collect();
            let transport = fields.get(2)?;
            if !transport.eq_ignore_ascii_case("udp") {
                return None;
            }
            let ip: IpAddr = fields.get(4)?.parse().ok()?;
            let port: u16 = fields.get(5)?.parse().ok()?;
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
        m=audio 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n";
    const TEMPLATE: &str = "v=0\r\na=group:BUNDLE abc xyz\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:abc\r\na=rtpmap:96 VP8/90000\r\n\
        a=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:xyz\r\na=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn the_fixed_mid_offer_gets_the_codecs_and_a_bundle() {
        let sdp = splice_codecs(OFFER, TEMPLATE).unwrap();
        assert!(sdp.contains("a=group:BUNDLE 0 1\r\n"), "{sdp}");
        let video = sdp.find("m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n").unwrap();
        let audio = sdp.find("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n").unwrap();
        assert!(video < audio);
        assert!(sdp[video..audio].contains("a=mid:0\r\n"));
        assert!(sdp[video..audio].contains("a=fmtp:97 apt=96\r\n"));
        assert!(sdp[audio..].contains("a=mid:1\r\n"));
        assert!(sdp[audio..].contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(!sdp.contains("abc") && !sdp.contains(" 0 UDP"), "{sdp}");
    }

    #[test]
    fn a_template_without_the_kind_gives_none() {
        let video_only = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(splice_codecs(OFFER, video_only), None);
        assert_eq!(splice_codecs(OFFER, ""), None);
    }

    #[test]
    fn candidate_lines_give_udp_addresses_and_odd_lines_are_skipped() {
        let sdp = "v=0\r\n\
            a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n\
            a=candidate:2 1 TCP 2130706431 127.0.0.1 40001 typ host tcptype passive\r\n\
            a=candidate:3 1 UDP 1 ::1 40002 typ host\r\n\
            a=candidate:garbage\r\n\
            a=candidate:4 1 udp 1 not-an-ip 5 typ host\r\n";
        let addrs = candidate_addrs(sdp);
        assert_eq!(
            addrs,
            [
                "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
                "[::1]:40002".parse::<SocketAddr>().unwrap(),
            ]
        );
    }
}
