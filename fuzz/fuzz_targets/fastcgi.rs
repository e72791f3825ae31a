//! The FastCGI record decoder: `decode_record` on the whole input, the incremental
//! `Decoder` fed in pieces whose sizes the first bytes choose, and `decode_name_values` on
//! every record's content; both decoders must agree.
#![no_main]

use fix502_probe::fastcgi::{Decoder, Expect, decode_name_values, decode_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[which, piece], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let expect = if which & 1 == 0 {
        Expect::RESPONSE
    } else {
        Expect::MANAGEMENT
    };
    // The records decode_record finds, one after the other, over the whole stream.
    let mut whole = Vec::new();
    let mut rest = stream;
    let whole_end = loop {
        match decode_record(rest, &expect) {
            Ok(Some((record, used))) => {
                assert!(used >= 8 && used <= rest.len());
                whole.push((record.header, record.content.to_vec()));
                let _ = decode_name_values(record.content);
                rest = rest.get(used..).unwrap_or_default();
            }
            Ok(None) => break Ok(rest.len()),
            Err(err) => break Err(err),
        }
    };
    // The same through the decoder, pushed in pieces of 1 to 256 bytes.
    let size = usize::from(piece) + 1;
    let mut decoder = Decoder::new(expect);
    let mut streamed = Vec::new();
    let mut error = None;
    'push: for chunk in stream.chunks(size) {
        decoder.push(chunk);
        loop {
            let ready = decoder.ready();
            match decoder.next_record() {
                Ok(Some(record)) => {
                    assert!(ready);
                    streamed.push((record.header, record.content.to_vec()));
                }
                Ok(None) => {
                    assert!(!ready);
                    break;
                }
                Err(err) => {
                    assert!(ready);
                    error = Some(err);
                    break 'push;
                }
            }
        }
    }
    assert_eq!(whole, streamed);
    match (whole_end, error) {
        (Err(a), Some(b)) => assert_eq!(a, b),
        (Ok(left), None) => assert_eq!(decoder.finish().is_ok(), left == 0),
        (a, b) => panic!("decode_record ended with {a:?}, the decoder with {b:?}"),
    }
});
