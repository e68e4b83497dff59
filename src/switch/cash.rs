//! Cash management and the daily cut-off, without I/O: what an operation
//! on a journaled transaction decides, the journal batch that records it,
//! what the acquirer must be told, and what a transaction's history reads
//! as. The async shell ([`super::Switch::operate`]) reads the journal,
//! serializes the operations of one transaction and commits what this
//! module decides.
//!
//! The table of what each status allows is [`super::lifecycle`]'s.

use super::codes::ResponseCode;
use super::cutoff::date_text;
use super::domain::ReversalReason;
use super::lifecycle::{AcquirerNotice, CaptureMode, Lifecycle, OperationError, Status};
use super::operation::{
    Capture, CashRequest, HistoryLine, OperationAnswer, OrderAnswer, Refusal, TransactionData,
};
use crate::journal::{
    Batch, Change, OperationRecord, ReversalState, SafKind, SafRecord, Settlement, TxRecord,
    TxState,
};

/// Where a journaled transaction stands: its settlement once an operation
/// or a cut-off changed it, else what its authorization made it (an
/// approval not reversed is to capture or to validate; anything else is
/// refused).
pub fn lifecycle_of(t: &TxRecord) -> Lifecycle {
    let mode = CaptureMode::parse(&t.capture_mode).unwrap_or(CaptureMode::AuthorCapture);
    let base = Lifecycle::approved(mode, t.amount, t.capture_day, 0);
    if let Some(s) = &t.settlement {
        if let Some(status) = Status::parse(&s.status) {
            return Lifecycle {
                status,
                capture_day: s.capture_day,
                remaining: s.remaining,
                captured: s.captured,
                refunded: s.refunded,
                ..base
            };
        }
    }
    if t.state == TxState::Approved && t.reversal == ReversalState::None {
        base
    } else {
        Lifecycle::refused(mode, t.amount, t.capture_day, 0)
    }
}

/// What an operation comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A retry of a recorded operation: its answer, nothing changes.
    Repeat(OperationAnswer),
    /// A new operation: the transaction's next state and what the
    /// acquirer must be told.
    Apply {
        next: Lifecycle,
        notice: AcquirerNotice,
    },
}

/// Decides `req` on transaction `t` (with its recorded operations `ops`)
/// on business day `today`. A refusal changes nothing.
pub fn decide(
    t: &TxRecord,
    ops: &[OperationRecord],
    req: &CashRequest,
    today: i32,
) -> Result<Decision, Refusal> {
    if let Some(r) = &req.operation_reference {
        if let Some(op) = ops
            .iter()
            .find(|o| o.operation_reference.as_deref() == Some(r))
        {
            let same = op.kind == req.kind.as_str() && op.amount == req.amount;
            if !same {
                return Err(Refusal {
                    code: ResponseCode::Duplicate,
                    field: Some("operationReference"),
                });
            }
            return Ok(Decision::Repeat(answer_of(t, op)));
        }
    }
    if let Some(c) = req.currency {
        if c.code() != t.currency {
            return Err(Refusal::invalid("currencyCode"));
        }
    }
    match lifecycle_of(t).apply(req.kind, req.amount, today) {
        Ok((next, notice)) => Ok(Decision::Apply { next, notice }),
        Err(OperationError::NotAllowed(_)) => Err(Refusal::code(ResponseCode::OperationNotAllowed)),
        Err(OperationError::Amount) => Err(Refusal::invalid("operationAmount")),
    }
}

/// The recorded answer of operation `op`.
fn answer_of(t: &TxRecord, op: &OperationRecord) -> OperationAnswer {
    OperationAnswer {
        response_code: ResponseCode::parse(&op.response_code).unwrap_or(ResponseCode::Approved),
        transaction_reference: t.reference.clone(),
        operation_reference: op.operation_reference.clone(),
        new_status: Status::parse(&op.new_status).unwrap_or(Status::Refused),
        new_amount: op.new_amount,
        operation_ms: op.created_ms,
    }
}

fn settlement(l: &Lifecycle, now_ms: u64) -> Settlement {
    Settlement {
        status: l.status.as_str().into(),
        remaining: l.remaining,
        captured: l.captured,
        refunded: l.refunded,
        capture_day: l.capture_day,
        updated_ms: now_ms,
    }
}

/// What an operation (a merchant's, or the cut-off's) does to `t`, as one
/// durable write: `t`'s new state `next`, the operation, and the message
/// that tells the acquirer `notice`, queued for store-and-forward. The
/// ids come from `new_id` (the message's first, asked only when there is
/// one); `None` when it has none to give.
#[allow(clippy::too_many_arguments)]
fn recorded(
    t: &TxRecord,
    next: &Lifecycle,
    notice: AcquirerNotice,
    kind: &str,
    amount: u64,
    operation_reference: Option<String>,
    now_ms: u64,
    saf_expiry_ms: u64,
    mut new_id: impl FnMut() -> Option<u64>,
) -> Option<(Batch, Option<SafRecord>, OperationRecord)> {
    let acquirer = t.sent_to.as_ref().map(|s| s.acquirer.clone());
    // A reversal carries the original amount, and what stays authorized
    // as the replacement.
    let message = match (notice, acquirer) {
        (AcquirerNotice::Refund { amount }, Some(acquirer)) => {
            Some((SafKind::Refund, amount, None, acquirer))
        }
        (AcquirerNotice::Reversal { replacement }, Some(acquirer)) => {
            Some((SafKind::Cancel, t.amount, Some(replacement), acquirer))
        }
        _ => None,
    };
    let message = match message {
        Some((kind, amount, replacement, acquirer)) => Some(SafRecord::queued(
            new_id()?,
            t.id,
            kind,
            acquirer,
            ReversalReason::Cancellation.as_str(),
            amount,
            replacement,
            now_ms,
            now_ms.saturating_add(saf_expiry_ms),
        )),
        None => None,
    };
    let op = OperationRecord {
        id: new_id()?,
        tx_id: t.id,
        kind: kind.into(),
        amount,
        operation_reference,
        response_code: ResponseCode::Approved.as_str().into(),
        new_status: next.status.as_str().into(),
        new_amount: next.current_amount(),
        created_ms: now_ms,
        saf_id: message.as_ref().map(|m| m.id),
    };
    let mut batch = vec![
        Change::Settle {
            tx_id: t.id,
            settlement: settlement(next, now_ms),
        },
        Change::InsertOperation(Box::new(op.clone())),
    ];
    if let Some(m) = &message {
        batch.push(Change::QueueSaf(Box::new(m.clone())));
    }
    Some((batch, message, op))
}

/// The journal batch of an applied operation (see [`recorded`]), the
/// message to push to the queue in memory once it is durable, and the
/// merchant's answer; `None` when `new_id` runs out.
pub fn record(
    t: &TxRecord,
    req: &CashRequest,
    next: &Lifecycle,
    notice: AcquirerNotice,
    now_ms: u64,
    saf_expiry_ms: u64,
    new_id: impl FnMut() -> Option<u64>,
) -> Option<(Batch, Option<SafRecord>, OperationAnswer)> {
    let (batch, message, op) = recorded(
        t,
        next,
        notice,
        req.kind.as_str(),
        req.amount,
        req.operation_reference.clone(),
        now_ms,
        saf_expiry_ms,
        new_id,
    )?;
    Some((batch, message, answer_of(t, &op)))
}

/// What the cut-off closing business day `day` does to `t`, or `None`:
/// its new status (captured or expired) and the batch that records it as
/// an operation, with, for an expiry, the reversal that gives the
/// cardholder's funds back (see [`Lifecycle::closed`]) in the same batch.
pub fn cut_off(
    t: &TxRecord,
    day: i32,
    now_ms: u64,
    saf_expiry_ms: u64,
    new_id: impl FnMut() -> Option<u64>,
) -> Option<(Status, Batch, Option<SafRecord>)> {
    let (next, notice) = lifecycle_of(t).closed(day)?;
    let (kind, amount) = match next.status {
        Status::Captured => ("capture", next.captured),
        _ => ("expire", next.remaining),
    };
    let (batch, message, _) = recorded(
        t,
        &next,
        notice,
        kind,
        amount,
        None,
        now_ms,
        saf_expiry_ms,
        new_id,
    )?;
    Some((next.status, batch, message))
}

/// getTransactionData's content for `t`, its operations `ops`, the answer
/// its authorization got and its capture terms. A cut-off that is due
/// but has not run yet (the switch was down) shows as run.
pub fn transaction_data(
    t: &TxRecord,
    ops: &[OperationRecord],
    order: OrderAnswer,
    capture: Capture,
    last_closed: i32,
) -> TransactionData {
    let l = lifecycle_of(t).as_of(last_closed);
    let pending = t.state == TxState::Sent;
    TransactionData {
        transaction_reference: t.reference.clone(),
        status: (!pending).then_some(l.status),
        original_amount: t.amount,
        current_amount: if pending { 0 } else { l.current_amount() },
        captured_amount: l.captured,
        refunded_amount: l.refunded,
        currency: t.currency.clone(),
        capture,
        capture_limit_date: date_text(l.capture_day),
        order,
        reversal: t.reversal.as_str(),
        history: ops
            .iter()
            .map(|o| HistoryLine {
                kind: o.kind.clone(),
                amount: o.amount,
                response_code: o.response_code.clone(),
                new_status: o.new_status.clone(),
                new_amount: o.new_amount,
                operation_ms: o.created_ms,
                operation_reference: o.operation_reference.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Answer, SentTo};
    use crate::switch::lifecycle::OperationKind;

    const DAY: i32 = 20_000;

    fn tx(mode: CaptureMode) -> TxRecord {
        TxRecord {
            id: 7,
            merchant_id: "m".into(),
            reference: "R1".into(),
            state: TxState::Approved,
            created_ms: 1,
            updated_ms: 1,
            amount: 1000,
            currency: "978".into(),
            masked_pan: "411111XXXXXX1111".into(),
            brand: "VISA".into(),
            pan_entry_mode: "OEMPAY".into(),
            wallet: Some("GOOGLEPAY".into()),
            order_channel: "INTERNET".into(),
            card: Vec::new(),
            content_hash: [0; 32],
            sent_to: Some(SentTo {
                acquirer: "acq".into(),
                terminal_id: "T".into(),
                acceptor_id: "A".into(),
                acquirer_id: "1".into(),
                merchant_category_code: "5999".into(),
                stan: "000001".into(),
                rrn: "000000000001".into(),
                sent_ms: 1,
            }),
            answer: Some(Answer {
                response_code: "00".into(),
                acquirer_response_code: Some("00".into()),
                authorisation_id: Some("A1".into()),
                answered_ms: 2,
            }),
            reversal: ReversalState::None,
            capture_mode: mode.as_str().into(),
            capture_day: DAY + 2,
            settlement: None,
        }
    }

    fn req(kind: OperationKind, amount: u64, op: Option<&str>) -> CashRequest {
        CashRequest {
            kind,
            transaction_reference: "R1".into(),
            amount,
            currency: None,
            operation_reference: op.map(str::to_owned),
        }
    }

    /// Applies `r` to `t` as the switch would, returning the new record
    /// and the batch.
    fn run(t: &TxRecord, ops: &mut Vec<OperationRecord>, r: &CashRequest) -> (TxRecord, Batch) {
        let Decision::Apply { next, notice } = decide(t, ops, r, DAY).unwrap() else {
            panic!("expected a new operation");
        };
        let mut ids = (100 + 10 * ops.len() as u64)..;
        let (batch, _, _) = record(t, r, &next, notice, 5, 1000, || ids.next()).unwrap();
        let mut t = t.clone();
        for c in &batch {
            match c {
                Change::Settle { settlement, .. } => t.settlement = Some(settlement.clone()),
                Change::InsertOperation(o) => ops.push((**o).clone()),
                _ => {}
            }
        }
        (t, batch)
    }

    #[test]
    fn partial_then_full_cancel_queue_reversals_with_what_stays() {
        let t = tx(CaptureMode::AuthorCapture);
        let mut ops = Vec::new();
        let (t, batch) = run(&t, &mut ops, &req(OperationKind::Cancel, 300, Some("c1")));
        let q = batch
            .iter()
            .find_map(|c| match c {
                Change::QueueSaf(q) => Some(q.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            (q.kind, q.amount, q.replacement),
            (SafKind::Cancel, 1000, Some(700))
        );
        assert_eq!(lifecycle_of(&t).status, Status::ToCapture);
        assert_eq!(lifecycle_of(&t).remaining, 700);
        // Above what is left: refused, nothing changes.
        assert_eq!(
            decide(&t, &ops, &req(OperationKind::Cancel, 701, None), DAY),
            Err(Refusal::invalid("operationAmount"))
        );
        let (t, batch) = run(&t, &mut ops, &req(OperationKind::Cancel, 700, None));
        assert!(batch
            .iter()
            .any(|c| matches!(c, Change::QueueSaf(q) if q.replacement == Some(0))));
        assert_eq!(lifecycle_of(&t).status, Status::Cancelled);
        // A retry of the first: its recorded answer, not a new cancel.
        match decide(&t, &ops, &req(OperationKind::Cancel, 300, Some("c1")), DAY) {
            Ok(Decision::Repeat(a)) => {
                assert_eq!((a.new_status, a.new_amount), (Status::ToCapture, 700))
            }
            other => panic!("{other:?}"),
        }
        // The same operation reference for something else: 94.
        assert_eq!(
            decide(&t, &ops, &req(OperationKind::Cancel, 5, Some("c1")), DAY)
                .unwrap_err()
                .code,
            ResponseCode::Duplicate
        );
        // Cancelled: nothing else is allowed.
        assert_eq!(
            decide(&t, &ops, &req(OperationKind::Refund, 5, None), DAY)
                .unwrap_err()
                .code,
            ResponseCode::OperationNotAllowed
        );
    }

    #[test]
    fn the_cut_off_captures_or_expires_and_refunds_follow() {
        let t = tx(CaptureMode::AuthorCapture);
        let mut ids = 0..;
        assert!(
            cut_off(&t, DAY + 1, 5, 60_000, || ids.next()).is_none(),
            "not due yet"
        );
        let (status, batch, message) = cut_off(&t, DAY + 2, 5, 60_000, || ids.next()).unwrap();
        assert_eq!(status, Status::Captured);
        assert!(message.is_none(), "a capture sends nothing now");
        assert!(!batch.iter().any(|c| matches!(c, Change::QueueSaf(_))));
        let Change::Settle { settlement, .. } = &batch[0] else {
            panic!()
        };
        assert_eq!(
            (settlement.status.as_str(), settlement.captured),
            ("CAPTURED", 1000)
        );
        let mut captured = t.clone();
        captured.settlement = Some(settlement.clone());
        // Captured: cancel refused; refund partial, then above the original.
        assert_eq!(
            decide(
                &captured,
                &[],
                &req(OperationKind::Cancel, 1, None),
                DAY + 3
            )
            .unwrap_err()
            .code,
            ResponseCode::OperationNotAllowed
        );
        let mut ops = Vec::new();
        let (c, batch) = run(&captured, &mut ops, &req(OperationKind::Refund, 400, None));
        assert!(batch.iter().any(
            |c| matches!(c, Change::QueueSaf(q) if q.kind == SafKind::Refund && q.amount == 400)
        ));
        let (c, _) = run(&c, &mut ops, &req(OperationKind::Refund, 2000, None));
        let l = lifecycle_of(&c);
        assert_eq!(
            (l.status, l.refunded, l.current_amount()),
            (Status::Credited, 2400, 0)
        );

        // Never validated: expired, and reversed at the acquirer in the
        // same write (the whole amount, nothing left authorized).
        let v = tx(CaptureMode::Validation);
        let (_, batch, message) = cut_off(&v, DAY + 2, 5, 60_000, || ids.next()).unwrap();
        assert!(
            matches!(&batch[0], Change::Settle { settlement, .. } if settlement.status == "EXPIRED")
        );
        let m = message.expect("the expiry reverses the authorization");
        assert_eq!(
            (m.kind, m.amount, m.replacement, m.tx_id, m.expires_ms),
            (SafKind::Cancel, 1000, Some(0), v.id, 60_005)
        );
        assert!(batch
            .iter()
            .any(|c| matches!(c, Change::QueueSaf(q) if q.id == m.id)));
        assert!(batch.iter().any(
            |c| matches!(c, Change::InsertOperation(o) if o.kind == "expire" && o.saf_id == Some(m.id))
        ));
        // Cancelled down to nothing before its limit: nothing left to
        // reverse at the expiry (the cancellations did).
        let mut ops = Vec::new();
        let (cancelled, _) = run(&v, &mut ops, &req(OperationKind::Cancel, 1000, None));
        assert!(cut_off(&cancelled, DAY + 2, 5, 60_000, || ids.next())
            .is_none_or(|(_, _, m)| m.is_none()));
    }

    #[test]
    fn refused_timed_out_and_pending_authorizations_allow_nothing() {
        for (state, reversal) in [
            (TxState::Refused, ReversalState::None),
            (TxState::TimedOut, ReversalState::Acknowledged),
            (TxState::Sent, ReversalState::None),
            (TxState::Approved, ReversalState::Queued),
        ] {
            let mut t = tx(CaptureMode::AuthorCapture);
            t.state = state;
            t.reversal = reversal;
            assert_eq!(lifecycle_of(&t).status, Status::Refused);
            for kind in OperationKind::ALL {
                assert_eq!(
                    decide(&t, &[], &req(kind, 1, None), DAY).unwrap_err().code,
                    ResponseCode::OperationNotAllowed,
                    "{state:?} {kind:?}"
                );
            }
        }
    }
}
