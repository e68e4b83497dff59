//! The journal's work per authorization, without the rest of the switch:
//! `N` card orders in group commits of `G` (a `sent` group, then its
//! outcome group), on a SQLite journal at `PATH` (put it on a tmpfs to
//! leave the disk out). For `perf stat` and `valgrind --tool=callgrind`:
//!
//! ```text
//! cargo run --release --example journal_loop -- /dev/shm/j.db 20000 32
//! ```

use std::time::Instant;

use acqswitch::card::{Expiry, Pan};
use acqswitch::journal::crypto::SealDomain;
use acqswitch::journal::sqlite::SqliteBackend;
use acqswitch::journal::{
    Answer, Backend, CardKey, Change, ReversalState, SentTo, TxRecord, TxState, TxUpdate,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "/dev/shm/journal_loop.db".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let g: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    let mut b = SqliteBackend::open(std::path::Path::new(&path)).expect("journal opens");
    let key = CardKey::new(&[7; 32]);
    let pan = Pan::new("4895370012003478").expect("test PAN");
    let exp = Expiry::new(2030, 12).expect("expiry");
    let t0 = 1_767_225_600_000u64;
    let started = Instant::now();
    let mut id = 1u64;
    while id <= n {
        let ids: Vec<u64> = (id..(id + g).min(n + 1)).collect();
        let sent: Vec<Vec<Change>> = ids
            .iter()
            .map(|&i| {
                let reference = format!("REF{i}");
                vec![
                    Change::ClaimReference {
                        merchant_id: "011223344550000".into(),
                        reference: reference.clone(),
                        tx_id: i,
                        content_hash: [i as u8; 32],
                        now_ms: t0 + i,
                        window_start_ms: t0,
                    },
                    Change::InsertTx(Box::new(TxRecord {
                        id: i,
                        merchant_id: "011223344550000".into(),
                        reference,
                        state: TxState::Sent,
                        created_ms: t0 + i,
                        updated_ms: t0 + i,
                        amount: 1000,
                        currency: "978".into(),
                        masked_pan: pan.masked(),
                        brand: "VISA".into(),
                        pan_entry_mode: "OEMPAY".into(),
                        wallet: Some("GOOGLEPAY".into()),
                        order_channel: "INTERNET".into(),
                        card: key.seal_card(SealDomain::Transaction, i, b"tx", &pan, exp),
                        content_hash: [i as u8; 32],
                        sent_to: Some(SentTo {
                            acquirer: "cb2a".into(),
                            terminal_id: "ACQ00001".into(),
                            acceptor_id: "MERCHANT0000001".into(),
                            acquirer_id: "00000000001".into(),
                            merchant_category_code: "5999".into(),
                            stan: format!("{:06}", i % 999_999 + 1),
                            rrn: format!("{i:012}"),
                            sent_ms: t0 + i,
                        }),
                        answer: None,
                        reversal: ReversalState::None,
                        capture_mode: "AUTHOR_CAPTURE".into(),
                        capture_day: 20_000,
                        settlement: None,
                    })),
                ]
            })
            .collect();
        b.commit(&sent).expect("sent group");
        let outcomes: Vec<Vec<Change>> = ids
            .iter()
            .map(|&i| {
                vec![Change::UpdateTx(TxUpdate {
                    id: i,
                    state: TxState::Approved,
                    updated_ms: t0 + i + 3,
                    answer: Some(Answer {
                        response_code: "00".into(),
                        acquirer_response_code: Some("00".into()),
                        authorisation_id: Some(format!("{:06}", i % 1_000_000)),
                        answered_ms: t0 + i + 3,
                    }),
                })]
            })
            .collect();
        if std::env::var_os("SKIP_OUTCOMES").is_none() {
            b.commit(&outcomes).expect("outcome group");
        }
        id += g;
    }
    let s = started.elapsed();
    println!(
        "{n} orders in groups of {g}: {:.2} s, {:.1} us per order",
        s.as_secs_f64(),
        s.as_secs_f64() * 1e6 / n as f64
    );
}
