//! The fuzzing entry points (`fuzz/`, see docs/fuzzing.md) on the seeds they start from, and
//! every input a fuzz target found a crash or a hang with, run through the same entry point
//! as a regression test.

use std::net::{IpAddr, Ipv4Addr};

use fix502_probe::dns::parse_answer;
use fix502_probe::gateway::{GatewayOutcome, judge_head_bytes};
use fix502_probe::tls::summarize_der;

/// A DNS answer to query `id` for `app.internal`, with the given header flags, question
/// type and answer records (type, data).
fn dns_message(id: u16, flags: u16, qtype: u16, answers: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [
        id,
        flags,
        1,
        u16::try_from(answers.len()).unwrap_or(0),
        0,
        0,
    ] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(b"\x03app\x08internal\x00");
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    for (rtype, data) in answers {
        out.extend_from_slice(b"\xc0\x0c");
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(data);
    }
    out
}

#[test]
fn dns_answers_are_taken_only_for_their_query() {
    let answer = dns_message(0x1234, 0x8180, 1, &[(1, &[10, 0, 3, 17])]);
    let addr = IpAddr::V4(Ipv4Addr::new(10, 0, 3, 17));
    assert_eq!(
        parse_answer(&answer, 0x1234, false, "app.internal"),
        Some((false, Ok(vec![addr])))
    );
    // Another id, the AAAA query, another name: not an answer to it.
    assert_eq!(parse_answer(&answer, 0x1235, false, "app.internal"), None);
    assert_eq!(parse_answer(&answer, 0x1234, true, "app.internal"), None);
    assert_eq!(parse_answer(&answer, 0x1234, false, "other.internal"), None);
    let nxdomain = dns_message(7, 0x8183, 1, &[]);
    assert_eq!(
        parse_answer(&nxdomain, 7, false, "app.internal"),
        Some((false, Err("NXDOMAIN".to_owned())))
    );
    let truncated = dns_message(7, 0x8380, 1, &[]);
    assert_eq!(
        parse_answer(&truncated, 7, false, "app.internal"),
        Some((true, Ok(Vec::new())))
    );
    assert_eq!(parse_answer(b"", 0, false, "app.internal"), None);
    assert_eq!(
        parse_answer(&answer[..20], 0x1234, false, "app.internal"),
        None
    );
}

#[test]
fn gateway_heads_read_whole_or_in_pieces_agree() {
    let head = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
    let every_byte: Vec<usize> = (1..head.len()).collect();
    for ends in [&[][..], &every_byte[..]] {
        assert_eq!(
            judge_head_bytes(head, ends, true, 4096),
            Some((GatewayOutcome::Response, Some(502)))
        );
        // FastCGI takes no status line: the line is a header line nginx skips.
        assert_eq!(
            judge_head_bytes(head, ends, false, 4096),
            Some((GatewayOutcome::Response, Some(200)))
        );
        assert_eq!(
            judge_head_bytes(head, ends, true, 10),
            Some((GatewayOutcome::HeaderTooBig, None))
        );
    }
    assert_eq!(judge_head_bytes(b"Status: 404\r\n", &[], false, 4096), None);
}

#[test]
fn certificates_that_do_not_parse_are_summarised_as_such() {
    for der in [&b""[..], b"\x30", b"\x30\x82\xff\xff", &[0xff; 64]] {
        let (summary, matches) = summarize_der(der, "app.internal");
        assert!(
            summary.subject.starts_with("(unparsable certificate"),
            "{summary:?}"
        );
        assert!(summary.names.is_empty());
        assert!(!matches);
    }
}

#[test]
fn a_certificate_is_summarised_with_its_names() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["*.app.internal".to_owned()]).expect("cert");
    let der = certified.cert.der();
    let (summary, matches) = summarize_der(der, "api.app.internal");
    assert_eq!(summary.names, vec!["*.app.internal".to_owned()]);
    assert!(summary.self_signed);
    assert!(summary.not_before < summary.not_after);
    assert!(matches);
    assert!(!summarize_der(der, "app.internal").1);
}
