//! ICE restarts as WHEP/WHIP do them (RFC 9725 §4.3): the `application/trickle-ice-sdpfrag`
//! body (RFC 8840) that carries new ICE credentials and candidates in a `PATCH`, and splicing
//! what the other side sent back into the full SDP that str0m renegotiates with.
//!
//! Shared by the WHEP client and the testkit's WHEP endpoint. Bounded: a fragment over
//! [`MAX_FRAGMENT`] bytes or with more than [`MAX_CANDIDATES`] candidates is refused, never read
//! further; anything malformed is a typed error, never a panic.

/// The media type of a trickle-ICE fragment.
pub(crate) const CONTENT_TYPE: &str = "application/trickle-ice-sdpfrag";

/// The largest fragment read.
pub(crate) const MAX_FRAGMENT: usize = 16 * 1024;

/// The most candidates a fragment may carry.
pub(crate) const MAX_CANDIDATES: usize = 64;

/// The ICE credentials and candidates of one side, as a fragment carries them. Its `Debug`
/// leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct IceFragment {
    pub(crate) ufrag: String,
    pub(crate) pwd: String,
    /// `candidate:...` attribute values (without `a=`).
    pub(crate) candidates: Vec<String>,
}

impl std::fmt::Debug for IceFragment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceFragment")
            .field("ufrag", &self.ufrag)
            .field("pwd", &"***")
            .field("candidates", &self.candidates.len())
            .finish()
    }
}

/// Why a fragment could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FragmentError {
    /// Over [`MAX_FRAGMENT`] bytes or [`MAX_CANDIDATES`] candidates.
    #[error("ICE fragment too large")]
    TooLarge,
    /// No `a=ice-ufrag` or no `a=ice-pwd`.
    #[error("ICE fragment without {0}")]
    Missing(&'static str),
    /// A value ICE does not allow (empty, too long, odd characters).
    #[error("ICE fragment with an unusable {0}")]
    Invalid(&'static str),
}

/// Whether `value` is an ICE `ufrag`/`pwd` (RFC 8839 ice-char: ALPHA / DIGIT / "+" / "/").
fn ice_chars(value: &str, min: usize) -> bool {
    (min..=256).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

impl IceFragment {
    /// Reads the credentials and candidates of a fragment, or of a whole SDP (the first
    /// `ice-ufrag`/`ice-pwd`, every candidate).
    pub(crate) fn parse(text: &str) -> Result<IceFragment, FragmentError> {
        if text.len() > MAX_FRAGMENT * 4 {
            return Err(FragmentError::TooLarge);
        }
        let (mut ufrag, mut pwd, mut candidates) = (None, None, Vec::new());
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
                ufrag.get_or_insert(v.trim());
            } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
                pwd.get_or_insert(v.trim());
            } else if let Some(v) = line.strip_prefix("a=")
                && v.starts_with("candidate:")
            {
                if candidates.len() == MAX_CANDIDATES {
                    return Err(FragmentError::TooLarge);
                }
                candidates.push(v.to_owned());
            }
        }
        let ufrag = ufrag.ok_or(FragmentError::Missing("ice-ufrag"))?;
        let pwd = pwd.ok_or(FragmentError::Missing("ice-pwd"))?;
        if !ice_chars(ufrag, 4) {
            return Err(FragmentError::Invalid("ice-ufrag"));
        }
        if !ice_chars(pwd, 22) {
            return Err(FragmentError::Invalid("ice-pwd"));
        }
        Ok(IceFragment {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
            candidates,
        })
    }

    /// The fragment body (RFC 9725 §4.3.1): credentials, the bundle group of `mids`, the first
    /// media section's `m=` and `a=mid` lines, and the candidates.
    pub(crate) fn to_body(&self, mids: &[String]) -> String {
        let mut body = format!(
            "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=ice-options:trickle\r\n",
            self.ufrag, self.pwd
        );
        if let Some(first) = mids.first() {
            body.push_str(&format!("a=group:BUNDLE {}\r\n", mids.join(" ")));
            body.push_str("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n");
            body.push_str(&format!("a=mid:{first}\r\n"));
        }
        for candidate in &self.candidates {
            body.push_str(&format!("a={candidate}\r\n"));
        }
        body
    }

    /// `sdp` with this side's credentials in place of its own, and this side's candidates in
    /// place of its own when it sent any (after the first media section's credentials).
    pub(crate) fn splice_into(&self, sdp: &str) -> String {
        let replace_candidates = !self.candidates.is_empty();
        let mut out = String::with_capacity(sdp.len() + 512);
        let mut placed = false;
        for line in sdp.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with("a=ice-ufrag:") {
                out.push_str(&format!("a=ice-ufrag:{}\r\n", self.ufrag));
            } else if line.starts_with("a=ice-pwd:") {
                out.push_str(&format!("a=ice-pwd:{}\r\n", self.pwd));
                if replace_candidates && !placed {
                    placed = true;
                    for candidate in &self.candidates {
                        out.push_str(&format!("a={candidate}\r\n"));
                    }
                }
            } else if replace_candidates && line.starts_with("a=candidate:") {
                continue;
            } else {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out
    }
}

/// The `a=mid` values of `sdp`, in order.
pub(crate) fn mids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("a=mid:"))
        .map(|m| m.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:oldu\r\n\
        a=ice-pwd:oldpasswordoldpassword12\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:oldu\r\n\
        a=ice-pwd:oldpasswordoldpassword12\r\n";

    fn fresh() -> IceFragment {
        IceFragment {
            ufrag: "newU".to_owned(),
            pwd: "newpasswordnewpassword+/".to_owned(),
            candidates: vec!["candidate:2 1 udp 2130706431 127.0.0.1 6000 typ host".to_owned()],
        }
    }

    #[test]
    fn a_body_reads_back_as_the_same_fragment() {
        let frag = fresh();
        let body = frag.to_body(&mids(SDP));
        assert!(body.contains("a=group:BUNDLE 0 1\r\n"), "{body}");
        assert!(body.contains("a=mid:0\r\n"));
        assert_eq!(IceFragment::parse(&body), Ok(frag));
    }

    #[test]
    fn a_whole_sdp_gives_its_first_credentials_and_every_candidate() {
        let frag = IceFragment::parse(SDP).unwrap();
        assert_eq!(frag.ufrag, "oldu");
        assert_eq!(frag.candidates.len(), 1);
    }

    #[test]
    fn splicing_replaces_credentials_everywhere_and_candidates_once() {
        let spliced = fresh().splice_into(SDP);
        assert!(!spliced.contains("oldu") && !spliced.contains("oldpassword"));
        assert_eq!(spliced.matches("a=ice-ufrag:newU").count(), 2);
        assert_eq!(spliced.matches("a=candidate:").count(), 1);
        assert!(spliced.contains("6000 typ host") && !spliced.contains("5000 typ host"));
        // Without candidates, the old ones stay.
        let mut bare = fresh();
        bare.candidates.clear();
        assert!(bare.splice_into(SDP).contains("5000 typ host"));
    }

    #[test]
    fn debug_leaves_the_password_out() {
        let debug = format!("{:?}", fresh());
        assert!(
            !debug.contains("newpassword") && debug.contains("newU"),
            "{debug}"
        );
    }

    #[test]
    fn bad_fragments_are_typed_errors() {
        assert_eq!(
            IceFragment::parse("a=ice-pwd:newpasswordnewpassword+/"),
            Err(FragmentError::Missing("ice-ufrag"))
        );
        assert_eq!(
            IceFragment::parse("a=ice-ufrag:abcd"),
            Err(FragmentError::Missing("ice-pwd"))
        );
        assert_eq!(
            IceFragment::parse("a=ice-ufrag:a b\r\na=ice-pwd:newpasswordnewpassword+/"),
            Err(FragmentError::Invalid("ice-ufrag"))
        );
        assert_eq!(
            IceFragment::parse("a=ice-ufrag:abcd\r\na=ice-pwd:short"),
            Err(FragmentError::Invalid("ice-pwd"))
        );
        let many = "a=candidate:1 1 udp 1 127.0.0.1 1 typ host\r\n".repeat(MAX_CANDIDATES + 1);
        assert_eq!(IceFragment::parse(&many), Err(FragmentError::TooLarge));
        assert_eq!(
            IceFragment::parse(&"x".repeat(MAX_FRAGMENT * 4 + 1)),
            Err(FragmentError::TooLarge)
        );
        // Garbage of any kind: an error or a fragment, never a panic.
        for junk in ["", "\0\0", "a=ice-ufrag:\r\n", "a=\r\na=candidate:"] {
            let _ = IceFragment::parse(junk);
        }
    }
}
