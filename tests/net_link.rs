//! Links and pools against the simulator over real loopback sockets.
//! Time-dependent tests run on tokio's paused clock: no real sleeping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use acqswitch::iso8583::{Message, Mti, Spec};
use acqswitch::net::{
    framing::LengthStyle, FramingConfig, Health, LinkError, LinkState, Pool, PoolConfig, Unmatched,
    UnmatchedKind,
};
use acqswitch::sim::{Faults, Latency, SimConfig, SimHandle, Simulator, TxStatus};

const T: Duration = Duration::from_secs(60);

fn spec() -> Arc<Spec> {
    Arc::new(Spec::builtin("cb2a").unwrap())
}

async fn sim_with(faults: Faults, framing: FramingConfig) -> SimHandle {
    let mut cfg = SimConfig::new(spec());
    cfg.faults = faults;
    cfg.framing = framing;
    Simulator::start(cfg).await.unwrap()
}

async fn sim(faults: Faults) -> SimHandle {
    sim_with(faults, FramingConfig::default()).await
}

fn pool_cfg(sim: &SimHandle) -> PoolConfig {
    PoolConfig {
        links: 1,
        request_timeout: Duration::from_secs(5),
        echo_interval: None,
        seed: Some(7),
        ..PoolConfig::new(sim.addr().to_string())
    }
}

fn auth(spec: &Spec, amount_minor: u64) -> Message<'static> {
    let mut m = Message::new(Mti::AUTHORIZATION_REQUEST);
    spec.set_text(&mut m, 2, "4761739001010119").unwrap();
    spec.set_text(&mut m, 3, "000000").unwrap();
    spec.set_text(&mut m, 4, &format!("{amount_minor:012}"))
        .unwrap();
    spec.set_text(&mut m, 41, "TERM0001").unwrap();
    spec.set_text(&mut m, 49, "978").unwrap();
    m
}

/// Collects every unmatched message.
fn collector() -> (acqswitch::net::UnmatchedHandler, Arc<Mutex<Vec<Unmatched>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    (Arc::new(move |u| s.lock().unwrap().push(u)), seen)
}

async fn ready_pool(cfg: PoolConfig) -> Pool {
    let pool = Pool::start(cfg.clone(), spec()).unwrap();
    tokio::time::timeout(T, pool.wait_ready(cfg.links))
        .await
        .unwrap();
    pool
}

#[tokio::test(start_paused = true)]
async fn signs_on_before_ready_then_round_trips() {
    let sim = sim(Faults::default()).await;
    let pool = Pool::start(pool_cfg(&sim), spec()).unwrap();
    assert_ne!(pool.link_states()[0], LinkState::Ready);
    tokio::time::timeout(T, pool.wait_ready(1)).await.unwrap();
    assert_eq!(pool.health(), Health::Up);
    // The first thing the simulator saw was the sign-on.
    let first = &sim.records()[0];
    let s = pool.spec();
    assert_eq!(first.mti(), Mti::NETWORK_REQUEST);
    assert_eq!(s.text(first, 70).unwrap(), "001");
    assert_eq!(pool.metrics().sign_ons, 1);

    for (amount, rc) in [(1000, "00"), (1005, "05"), (1099, "96"), (1042, "00")] {
        let resp = pool.send(auth(s, amount)).await.unwrap();
        let m = resp.message();
        assert_eq!(m.mti(), Mti::AUTHORIZATION_RESPONSE);
        assert_eq!(s.text(m, 39).unwrap(), rc, "amount {amount}");
        assert_eq!(s.text(m, 41).unwrap(), "TERM0001");
        assert_eq!(m.has(38), rc == "00");
    }
    // The pool allocated STANs 2..=5 (1 went to the sign-on); DE 2 reached the sim.
    let last = sim.records().pop().unwrap();
    assert_eq!(s.text(&last, 11).unwrap(), "000005");
    assert_eq!(s.text(&last, 2).unwrap(), "4761739001010119");
    assert_eq!(sim.ledger().len(), 2);
    assert_eq!(pool.stans_in_flight(), 0);
    pool.shutdown().await;
    assert_eq!(pool.health(), Health::Down);
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_match_out_of_order_responses() {
    let sim = sim(Faults {
        out_of_order: Some(16),
        reorder_step: Duration::from_millis(1),
        ..Faults::default()
    })
    .await;
    let pool = ready_pool(PoolConfig {
        links: 2,
        ..pool_cfg(&sim)
    })
    .await;
    let s = Arc::clone(pool.spec());
    let tasks: Vec<_> = (0..64u64)
        .map(|i| {
            let pool = pool.clone();
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                // Distinct amounts: the response must echo this request's DE 4.
                let amount = 10_000 + i * 100;
                let resp = pool.send(auth(&s, amount)).await.unwrap();
                let m = resp.message();
                assert_eq!(s.text(m, 4).unwrap(), format!("{amount:012}"));
                assert_eq!(s.text(m, 39).unwrap(), "00");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let m = pool.metrics();
    assert_eq!(m.matched, 64);
    assert_eq!(m.unmatched_total(), 0);
    assert_eq!(sim.ledger().len(), 64);
}

#[tokio::test(start_paused = true)]
async fn timeout_then_late_response_reaches_handler() {
    let sim = sim(Faults::default()).await;
    let (handler, seen) = collector();
    let cfg = PoolConfig {
        request_timeout: Duration::from_secs(1),
        ..pool_cfg(&sim)
    };
    let pool = Pool::start_with_handler(cfg, spec(), handler).unwrap();
    tokio::time::timeout(T, pool.wait_ready(1)).await.unwrap();
    sim.set_faults(Faults {
        latency: Latency::Fixed(Duration::from_secs(3)),
        ..Faults::default()
    });
    let s = Arc::clone(pool.spec());
    let started = tokio::time::Instant::now();
    let err = pool.send(auth(&s, 500)).await.unwrap_err();
    assert!(matches!(err, LinkError::Timeout), "{err:?}");
    assert!(err.maybe_delivered());
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(pool.stans_in_flight(), 0);
    // The answer arrives two seconds later and goes to the handler.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].kind, UnmatchedKind::Late);
    let late = s.decode(&seen[0].body).unwrap();
    assert_eq!(s.text(&late, 39).unwrap(), "00");
    let m = pool.metrics();
    assert_eq!((m.timeouts, m.unmatched_late), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn duplicate_key_in_flight_is_rejected() {
    let sim = sim(Faults::default()).await;
    let pool = ready_pool(pool_cfg(&sim)).await;
    sim.set_faults(Faults {
        latency: Latency::Fixed(Duration::from_millis(100)),
        ..Faults::default()
    });
    let s = Arc::clone(pool.spec());
    let mut req = auth(&s, 700);
    s.set_text(&mut req, 11, "123456").unwrap();
    let (a, b) = tokio::join!(pool.send_prepared(&req, None), async {
        tokio::task::yield_now().await;
        pool.send_prepared(&req, None).await
    });
    assert!(a.is_ok(), "{a:?}");
    assert!(matches!(b, Err(LinkError::DuplicateKey)), "{b:?}");
    assert_eq!(pool.metrics().duplicate_keys, 1);
    // Once answered, the key is free again.
    pool.send_prepared(&req, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn busy_when_in_flight_bound_reached() {
    let sim = sim(Faults {
        latency: Latency::Fixed(Duration::from_millis(100)),
        ..Faults::default()
    })
    .await;
    let pool = ready_pool(PoolConfig {
        max_in_flight_per_link: 2,
        ..pool_cfg(&sim)
    })
    .await;
    let s = Arc::clone(pool.spec());
    let (a, b, c) = tokio::join!(
        pool.send(auth(&s, 100)),
        pool.send(auth(&s, 200)),
        pool.send(auth(&s, 300))
    );
    assert!(a.is_ok() && b.is_ok());
    assert!(matches!(c, Err(LinkError::Busy)), "{c:?}");
}

#[tokio::test(start_paused = true)]
async fn duplicate_and_garbage_responses_go_to_handler() {
    let sim = sim(Faults::default()).await;
    let (handler, seen) = collector();
    let pool = Pool::start_with_handler(pool_cfg(&sim), spec(), handler).unwrap();
    tokio::time::timeout(T, pool.wait_ready(1)).await.unwrap();
    sim.set_faults(Faults {
        duplicate_every: Some(1),
        ..Faults::default()
    });
    let s = Arc::clone(pool.spec());
    pool.send(auth(&s, 100)).await.unwrap();
    sim.set_faults(Faults {
        garbage_every: Some(1),
        ..Faults::default()
    });
    let err = pool.send(auth(&s, 100)).await.unwrap_err();
    assert!(matches!(err, LinkError::Timeout));
    let kinds: Vec<_> = seen.lock().unwrap().iter().map(|u| u.kind).collect();
    assert_eq!(
        kinds,
        [UnmatchedKind::Duplicate, UnmatchedKind::Undecodable]
    );
    // A garbage message does not close the link.
    assert_eq!(pool.health(), Health::Up);
}

#[tokio::test(start_paused = true)]
async fn dropped_connection_fails_in_flight_at_once_and_reconnects() {
    let sim = sim(Faults::default()).await;
    let pool = ready_pool(pool_cfg(&sim)).await;
    let s = Arc::clone(pool.spec());
    pool.send(auth(&s, 100)).await.unwrap();
    sim.set_faults(Faults {
        drop_after: Some(1),
        ..Faults::default()
    });
    let started = tokio::time::Instant::now();
    let err = pool.send(auth(&s, 100)).await.unwrap_err();
    assert!(matches!(err, LinkError::Disconnected), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "not a timeout");
    assert_eq!(pool.metrics().failed_in_flight, 1);
    sim.set_faults(Faults::default());
    tokio::time::timeout(T, pool.wait_ready(1)).await.unwrap();
    assert_eq!(sim.connections_accepted(), 2);
    assert_eq!(pool.metrics().sign_ons, 2);
    pool.send(auth(&s, 100)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn corrupt_frame_closes_link_counts_and_reconnects() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A hand-driven acquirer: answers the sign-on with a length header of
    // 0xFFFF, over the 8192-byte maximum.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = PoolConfig::new(listener.local_addr().unwrap().to_string());
    let pool = Pool::start(
        PoolConfig {
            links: 1,
            echo_interval: None,
            seed: Some(1),
            ..cfg
        },
        spec(),
    )
    .unwrap();
    let (mut first, _) = listener.accept().await.unwrap();
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.unwrap();
    assert!(n > 2, "sign-on expected");
    first.write_all(&[0xFF, 0xFF, 0x01]).await.unwrap();
    // The link closes (read returns 0) and comes back.
    assert_eq!(first.read(&mut buf).await.unwrap(), 0);
    let (_second, _) = tokio::time::timeout(T, listener.accept())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(T, pool.wait_until(|s| s[0] == LinkState::SigningOn))
        .await
        .unwrap();
    assert_eq!(pool.metrics().framing_errors, 1);
    assert_eq!(pool.metrics().connects, 2);
}

#[tokio::test(start_paused = true)]
async fn fails_over_to_secondary() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = closed.local_addr().unwrap();
    drop(closed);
    let sim = sim(Faults::default()).await;
    let pool = ready_pool(PoolConfig {
        links: 2,
        primary: primary.to_string(),
        secondary: Some(sim.addr().to_string()),
        ..pool_cfg(&sim)
    })
    .await;
    assert!(pool.links().iter().all(|l| l.on_secondary()));
    let s = Arc::clone(pool.spec());
    pool.send(auth(&s, 100)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn fails_back_to_the_primary_without_failing_requests() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = closed.local_addr().unwrap();
    drop(closed);
    let secondary = sim(Faults::default()).await;
    let pool = ready_pool(PoolConfig {
        links: 2,
        primary: primary.to_string(),
        secondary: Some(secondary.addr().to_string()),
        failback_interval: Some(Duration::from_secs(2)),
        ..pool_cfg(&secondary)
    })
    .await;
    assert!(pool.links().iter().all(|l| l.on_secondary()));
    let s = Arc::clone(pool.spec());
    // Nothing on the primary yet: the probes fail, the links stay put.
    for _ in 0..5 {
        pool.send(auth(&s, 100)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(pool.links().iter().all(|l| l.on_secondary()));
    assert_eq!(pool.metrics().failbacks, 0);

    // The primary comes back: each link drains and moves, one at a time,
    // and every request meanwhile is answered.
    let mut cfg = SimConfig::new(spec());
    cfg.listen = primary;
    let back = Simulator::start(cfg).await.unwrap();
    let mut sent = 0;
    while pool.links().iter().any(|l| l.on_secondary()) {
        pool.send(auth(&s, 100)).await.unwrap();
        sent += 1;
        assert!(sent < 10_000, "links never moved back to the primary");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::timeout(T, pool.wait_ready(2)).await.unwrap();
    assert_eq!(pool.metrics().failbacks, 2);
    let before = back.ledger().len();
    pool.send(auth(&s, 100)).await.unwrap();
    assert_eq!(
        back.ledger().len(),
        before + 1,
        "the primary took the request"
    );
}

#[tokio::test(start_paused = true)]
async fn degraded_then_down_when_endpoint_goes_away() {
    let sim = sim(Faults::default()).await;
    let pool = ready_pool(PoolConfig {
        links: 2,
        ..pool_cfg(&sim)
    })
    .await;
    assert_eq!(pool.health(), Health::Up);
    sim.shutdown().await;
    tokio::time::timeout(
        T,
        pool.wait_until(|s| s.iter().all(|s| *s != LinkState::Ready)),
    )
    .await
    .unwrap();
    assert_eq!(pool.health(), Health::Down);
    let s = Arc::clone(pool.spec());
    assert!(matches!(
        pool.send(auth(&s, 100)).await,
        Err(LinkError::NoReadyLink)
    ));
}

#[tokio::test(start_paused = true)]
async fn refused_sign_on_keeps_link_out_of_service() {
    let sim = sim(Faults {
        refuse_sign_on: true,
        ..Faults::default()
    })
    .await;
    let pool = Pool::start(pool_cfg(&sim), spec()).unwrap();
    tokio::time::timeout(T, sim.wait_until(|st| st.counts.network >= 3))
        .await
        .unwrap();
    assert_eq!(pool.health(), Health::Down);
    assert_eq!(pool.metrics().sign_ons, 0);
    sim.set_faults(Faults::default());
    tokio::time::timeout(T, pool.wait_ready(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn echo_test_when_idle_and_link_dropped_without_answer() {
    let sim = sim(Faults::default()).await;
    let pool = ready_pool(PoolConfig {
        echo_interval: Some(Duration::from_secs(30)),
        network_timeout: Duration::from_secs(5),
        ..pool_cfg(&sim)
    })
    .await;
    let s = Arc::clone(pool.spec());
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(pool.metrics().echoes_sent, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pool.metrics().echoes_sent, 1);
    let echo = sim.records().pop().unwrap();
    assert_eq!(echo.mti(), Mti::NETWORK_REQUEST);
    assert_eq!(s.text(&echo, 70).unwrap(), "301");
    assert_eq!(pool.health(), Health::Up);
    // An unanswered echo takes the link down; it reconnects.
    sim.set_faults(Faults {
        ignore_echo: true,
        ..Faults::default()
    });
    tokio::time::timeout(T, pool.wait_until(|s| s[0] != LinkState::Ready))
        .await
        .unwrap();
    sim.set_faults(Faults::default());
    tokio::time::timeout(T, pool.wait_ready(1)).await.unwrap();
    assert_eq!(sim.connections_accepted(), 2);
}

#[tokio::test(start_paused = true)]
async fn answers_the_acquirers_own_0800() {
    let sim = sim(Faults::default()).await;
    let pool = ready_pool(pool_cfg(&sim)).await;
    assert_eq!(sim.send_network("301"), 1);
    tokio::time::timeout(T, sim.wait_until(|st| st.counts.responses_received == 1))
        .await
        .unwrap();
    let answer = sim.records().pop().unwrap();
    let s = pool.spec();
    assert_eq!(answer.mti(), Mti::NETWORK_RESPONSE);
    assert_eq!(s.text(&answer, 39).unwrap(), "00");
    assert_eq!(s.text(&answer, 70).unwrap(), "301");
    assert_eq!(pool.metrics().network_answered, 1);
}

#[tokio::test(start_paused = true)]
async fn other_framings_with_tpdu() {
    for framing in [
        FramingConfig::new(LengthStyle::TwoByteBcd).with_header(&[0x60, 0, 1, 0, 0]),
        FramingConfig {
            length_includes_self: true,
            ..FramingConfig::new(LengthStyle::FourByteAscii)
        },
        FramingConfig::new(LengthStyle::FourByteBinary),
    ] {
        let sim = sim_with(Faults::default(), framing.clone()).await;
        let pool = ready_pool(PoolConfig {
            framing,
            ..pool_cfg(&sim)
        })
        .await;
        let s = Arc::clone(pool.spec());
        let resp = pool.send(auth(&s, 100)).await.unwrap();
        assert_eq!(s.text(resp.message(), 39).unwrap(), "00");
        pool.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn reversal_marks_ledger() {
    let sim = sim(Faults::default()).await;
    let pool = ready_pool(pool_cfg(&sim)).await;
    let s = Arc::clone(pool.spec());
    let resp = pool.send(auth(&s, 2500)).await.unwrap();
    let m = resp.message();
    let stan = s.text(m, 11).unwrap().into_owned();
    assert_eq!(
        sim.ledger_entry("TERM0001", &stan).unwrap().status,
        TxStatus::Approved
    );
    let mut rev = auth(&s, 2500);
    rev.set_mti(Mti::REVERSAL_REQUEST);
    s.set_text(&mut rev, 90, &format!("0100{stan}{}", "0".repeat(32)))
        .unwrap();
    let r = pool.send(rev).await.unwrap();
    assert_eq!(r.message().mti(), Mti::REVERSAL_RESPONSE);
    assert_eq!(
        sim.ledger_entry("TERM0001", &stan).unwrap().status,
        TxStatus::Reversed
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_then_signs_off() {
    let sim = sim(Faults {
        latency: Latency::Fixed(Duration::from_millis(200)),
        ..Faults::default()
    })
    .await;
    let pool = ready_pool(pool_cfg(&sim)).await;
    let s = Arc::clone(pool.spec());
    // A request in flight when the shutdown begins is answered, not cut off.
    let in_flight = {
        let pool = pool.clone();
        let s = Arc::clone(&s);
        tokio::spawn(async move { pool.send(auth(&s, 100)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pool.links()[0].in_flight(), 1);
    pool.shutdown().await;
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(s.text(resp.message(), 39).unwrap(), "00");
    assert_eq!(pool.health(), Health::Down);
    // The last thing the acquirer saw: the sign-off, after the request.
    let records = sim.records();
    let sign_off = records.last().unwrap();
    assert_eq!(sign_off.mti(), Mti::NETWORK_REQUEST);
    assert_eq!(s.text(sign_off, 70).unwrap(), "002");
    assert_eq!(records[records.len() - 2].mti(), Mti::AUTHORIZATION_REQUEST);
    // Sign-on and sign-off, both answered.
    assert_eq!(sim.counts().network, 2);
    assert_eq!(pool.stans_in_flight(), 0);
}
