//! A transaction after its authorization, without I/O: its status, its
//! amounts, the cash-management operations its status allows, and the
//! daily cut-off that captures or expires it. Days are business days
//! (see [`super::cutoff`]), passed in.
//!
//! | status \ operation | cancel | validate | refund | cut-off on or after the capture day |
//! |---|---|---|---|---|
//! | `TO_VALIDATE` | yes, up to what is left | yes, up to what is left, up to the capture day | no | `EXPIRED` |
//! | `TO_CAPTURE` | yes, up to what is left | no | no | `CAPTURED` |
//! | `CAPTURED` | no | no | yes, any amount | - |
//! | `CREDITED` | no | no | yes, any amount | - |
//! | `CANCELLED`, `REFUSED`, `EXPIRED` | no | no | no | - |
//!
//! An operation the status does not allow is refused with 24 and changes
//! nothing; an amount of 0, or a cancel or validate above what is left, is
//! refused with 12 naming `operationAmount`. A full cancel (all that is
//! left) makes the transaction `CANCELLED`; a partial one leaves it in its
//! status with less left. A validate makes it `TO_CAPTURE` for the amount
//! validated, captured at that day's cut-off. Refunds are not bounded by
//! the amount captured (the Google Pay guide allows any refund); the first
//! makes the transaction `CREDITED`.

use std::fmt;

/// `captureMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureMode {
    /// Captured at the cut-off of the capture day (the default).
    AuthorCapture,
    /// Captured only once validated; not validated by the capture day's
    /// cut-off, it expires.
    Validation,
}

impl CaptureMode {
    pub const ALL: [CaptureMode; 2] = [CaptureMode::AuthorCapture, CaptureMode::Validation];

    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::AuthorCapture => "AUTHOR_CAPTURE",
            CaptureMode::Validation => "VALIDATION",
        }
    }

    pub fn parse(s: &str) -> Option<CaptureMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// The latest capture day a merchant may ask for; a later one is brought
/// back to it (the Google Pay guide's rule).
pub const MAX_CAPTURE_DAY: u8 = 6;

/// `captureDay` as asked, and as applied.
pub fn applied_capture_day(asked: u64) -> u8 {
    u8::try_from(asked.min(u64::from(MAX_CAPTURE_DAY))).unwrap_or(MAX_CAPTURE_DAY)
}

/// A transaction's status (Sips Office's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    ToValidate,
    ToCapture,
    Captured,
    Credited,
    Cancelled,
    Refused,
    Expired,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::ToValidate,
        Status::ToCapture,
        Status::Captured,
        Status::Credited,
        Status::Cancelled,
        Status::Refused,
        Status::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::ToValidate => "TO_VALIDATE",
            Status::ToCapture => "TO_CAPTURE",
            Status::Captured => "CAPTURED",
            Status::Credited => "CREDITED",
            Status::Cancelled => "CANCELLED",
            Status::Refused => "REFUSED",
            Status::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether `kind` is allowed in this status (the table above).
    pub fn allows(self, kind: OperationKind) -> bool {
        use OperationKind::*;
        use Status::*;
        matches!(
            (self, kind),
            (ToValidate, Cancel)
                | (ToValidate, Validate)
                | (ToCapture, Cancel)
                | (Captured, Refund)
                | (Credited, Refund)
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cash-management operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    Cancel,
    Validate,
    Refund,
}

impl OperationKind {
    pub const ALL: [OperationKind; 3] = [
        OperationKind::Cancel,
        OperationKind::Validate,
        OperationKind::Refund,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Cancel => "cancel",
            OperationKind::Validate => "validate",
            OperationKind::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<OperationKind> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Where a transaction stands after its authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub status: Status,
    pub mode: CaptureMode,
    /// The business day it is captured (or expires) at the cut-off of.
    pub capture_day: i32,
    /// The amount authorized.
    pub authorized: u64,
    /// What is left to capture: authorized, less what was cancelled (or,
    /// once validated, the amount validated).
    pub remaining: u64,
    pub captured: u64,
    pub refunded: u64,
}

/// Why an operation is refused (nothing changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationError {
    /// The status does not allow it: 24.
    NotAllowed(Status),
    /// 0, or more than what is left: 12 on `operationAmount`.
    Amount,
}

/// What the acquirer must be told of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquirerNotice {
    /// Nothing (a validation changes only what is captured later).
    None,
    /// A reversal of the authorization: `replacement` is what stays
    /// authorized (0 for a full reversal).
    Reversal { replacement: u64 },
    /// A refund of `amount`.
    Refund { amount: u64 },
}

impl Lifecycle {
    /// An approved authorization, on business day `today`, captured (or to
    /// be validated by) `capture_days` later.
    pub fn approved(mode: CaptureMode, amount: u64, today: i32, capture_days: u8) -> Lifecycle {
        Lifecycle {
            status: match mode {
                CaptureMode::AuthorCapture => Status::ToCapture,
                CaptureMode::Validation => Status::ToValidate,
            },
            mode,
            capture_day: today.saturating_add(i32::from(capture_days)),
            authorized: amount,
            remaining: amount,
            captured: 0,
            refunded: 0,
        }
    }

    /// A refused authorization (or one that ended unknown and was reversed).
    pub fn refused(mode: CaptureMode, amount: u64, today: i32, capture_days: u8) -> Lifecycle {
        Lifecycle {
            status: Status::Refused,
            remaining: 0,
            ..Lifecycle::approved(mode, amount, today, capture_days)
        }
    }

    /// The amount the merchant is told after an operation (`newAmount`):
    /// what is left to capture before capture, what was captured less what
    /// was refunded after (never below 0).
    pub fn current_amount(&self) -> u64 {
        match self.status {
            Status::Captured | Status::Credited => self.captured.saturating_sub(self.refunded),
            _ => self.remaining,
        }
    }

    /// Applies `kind` of `amount` on business day `today`: the new state
    /// and what the acquirer must be told, or why not (nothing changed).
    pub fn apply(
        &self,
        kind: OperationKind,
        amount: u64,
        today: i32,
    ) -> Result<(Lifecycle, AcquirerNotice), OperationError> {
        // A cut-off that has not run yet (the switch was down) counts as
        // run: the status is the one the day makes it.
        let current = self.as_of(today.saturating_sub(1));
        if !current.status.allows(kind) {
            return Err(OperationError::NotAllowed(current.status));
        }
        if amount == 0 {
            return Err(OperationError::Amount);
        }
        let mut next = current;
        let notice = match kind {
            OperationKind::Cancel => {
                if amount > current.remaining {
                    return Err(OperationError::Amount);
                }
                next.remaining = current.remaining - amount;
                if next.remaining == 0 {
                    next.status = Status::Cancelled;
                }
                AcquirerNotice::Reversal {
                    replacement: next.remaining,
                }
            }
            OperationKind::Validate => {
                if amount > current.remaining {
                    return Err(OperationError::Amount);
                }
                next.remaining = amount;
                next.status = Status::ToCapture;
                // Captured at today's cut-off.
                next.capture_day = today;
                if amount < current.remaining {
                    AcquirerNotice::Reversal {
                        replacement: amount,
                    }
                } else {
                    AcquirerNotice::None
                }
            }
            OperationKind::Refund => {
                next.refunded = current.refunded.saturating_add(amount);
                next.status = Status::Credited;
                AcquirerNotice::Refund { amount }
            }
        };
        Ok((next, notice))
    }

    /// The cut-off closing business day `day`: `TO_CAPTURE` due by then is
    /// captured, `TO_VALIDATE` due by then expires. `None`: no change.
    pub fn cut_off(&self, day: i32) -> Option<Lifecycle> {
        self.closed(day).map(|(next, _)| next)
    }

    /// [`cut_off`](Self::cut_off), and what the acquirer must be told of
    /// it: nothing of a capture (the clearing carries it); an expiry
    /// reverses whatever was still authorized, which must not hold the
    /// cardholder's funds until the issuer lets it lapse.
    pub fn closed(&self, day: i32) -> Option<(Lifecycle, AcquirerNotice)> {
        if self.capture_day > day {
            return None;
        }
        match self.status {
            Status::ToCapture => Some((
                Lifecycle {
                    status: Status::Captured,
                    captured: self.remaining,
                    ..*self
                },
                AcquirerNotice::None,
            )),
            Status::ToValidate => Some((
                Lifecycle {
                    status: Status::Expired,
                    ..*self
                },
                if self.remaining > 0 {
                    AcquirerNotice::Reversal { replacement: 0 }
                } else {
                    AcquirerNotice::None
                },
            )),
            _ => None,
        }
    }

    /// As it stands once the cut-offs up to `day` have run (whether or
    /// not they have).
    pub fn as_of(&self, day: i32) -> Lifecycle {
        self.cut_off(day).unwrap_or(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i32 = 20_000;

    fn in_status(status: Status) -> Lifecycle {
        let mode = if status == Status::ToValidate {
            CaptureMode::Validation
        } else {
            CaptureMode::AuthorCapture
        };
        let mut l = Lifecycle::approved(mode, 1000, DAY, 3);
        l.status = status;
        match status {
            Status::Captured => l.captured = 1000,
            Status::Credited => {
                l.captured = 1000;
                l.refunded = 100;
            }
            Status::Cancelled | Status::Refused => l.remaining = 0,
            _ => {}
        }
        l
    }

    /// Every operation in every status, with amounts inside and outside
    /// what is left: allowed exactly where the table says, and a refusal
    /// changes nothing.
    #[test]
    fn the_state_table_every_operation_in_every_status() {
        let table: &[(Status, [bool; 3])] = &[
            (Status::ToValidate, [true, true, false]),
            (Status::ToCapture, [true, false, false]),
            (Status::Captured, [false, false, true]),
            (Status::Credited, [false, false, true]),
            (Status::Cancelled, [false, false, false]),
            (Status::Refused, [false, false, false]),
            (Status::Expired, [false, false, false]),
        ];
        assert_eq!(table.len(), Status::ALL.len());
        for (status, allowed) in table {
            for (kind, allowed) in OperationKind::ALL.into_iter().zip(allowed) {
                assert_eq!(status.allows(kind), *allowed, "{status} {kind:?}");
                let l = in_status(*status);
                for amount in [0, 1, 999, 1000, 1001, 5000] {
                    let result = l.apply(kind, amount, DAY);
                    if !allowed {
                        assert_eq!(
                            result,
                            Err(OperationError::NotAllowed(*status)),
                            "{status} {kind:?} {amount}"
                        );
                        continue;
                    }
                    let bounded = kind != OperationKind::Refund;
                    let fits = amount > 0 && (!bounded || amount <= l.remaining);
                    match result {
                        Ok((next, _)) => {
                            assert!(fits, "{status} {kind:?} {amount} accepted");
                            assert_eq!(next.authorized, 1000);
                        }
                        Err(e) => {
                            assert!(!fits, "{status} {kind:?} {amount}: {e:?}");
                            assert_eq!(e, OperationError::Amount);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn partial_then_full_cancel() {
        let l = Lifecycle::approved(CaptureMode::AuthorCapture, 1000, DAY, 0);
        let (l, n) = l.apply(OperationKind::Cancel, 300, DAY).unwrap();
        assert_eq!((l.status, l.remaining), (Status::ToCapture, 700));
        assert_eq!(n, AcquirerNotice::Reversal { replacement: 700 });
        assert_eq!(
            l.apply(OperationKind::Cancel, 701, DAY),
            Err(OperationError::Amount)
        );
        let (l, n) = l.apply(OperationKind::Cancel, 700, DAY).unwrap();
        assert_eq!((l.status, l.remaining), (Status::Cancelled, 0));
        assert_eq!(n, AcquirerNotice::Reversal { replacement: 0 });
        assert_eq!(l.cut_off(DAY + 10), None, "nothing to capture");
    }

    #[test]
    fn author_capture_is_captured_at_the_capture_days_cut_off() {
        let l = Lifecycle::approved(CaptureMode::AuthorCapture, 1000, DAY, 2);
        assert_eq!(l.cut_off(DAY), None);
        assert_eq!(l.cut_off(DAY + 1), None);
        let c = l.cut_off(DAY + 2).unwrap();
        assert_eq!((c.status, c.captured), (Status::Captured, 1000));
        // Cancel after capture: refused, even when the cut-off did not run.
        assert_eq!(
            l.apply(OperationKind::Cancel, 10, DAY + 3),
            Err(OperationError::NotAllowed(Status::Captured))
        );
    }

    #[test]
    fn validation_mode_validated_then_captured_or_else_expired() {
        let l = Lifecycle::approved(CaptureMode::Validation, 1000, DAY, 3);
        assert_eq!(l.status, Status::ToValidate);
        let (v, n) = l.apply(OperationKind::Validate, 800, DAY + 1).unwrap();
        assert_eq!(
            (v.status, v.remaining, v.capture_day),
            (Status::ToCapture, 800, DAY + 1)
        );
        assert_eq!(n, AcquirerNotice::Reversal { replacement: 800 });
        let c = v.cut_off(DAY + 1).unwrap();
        assert_eq!((c.status, c.captured), (Status::Captured, 800));
        // Never validated: expired by the capture day's cut-off, and
        // reversed at the acquirer.
        let e = l.cut_off(DAY + 3).unwrap();
        assert_eq!(e.status, Status::Expired);
        assert_eq!(
            l.closed(DAY + 3).map(|(_, n)| n),
            Some(AcquirerNotice::Reversal { replacement: 0 })
        );
        assert_eq!(
            v.closed(DAY + 1).map(|(_, n)| n),
            Some(AcquirerNotice::None)
        );
        assert_eq!(
            l.apply(OperationKind::Validate, 1000, DAY + 4),
            Err(OperationError::NotAllowed(Status::Expired))
        );
        let (full, n) = l.apply(OperationKind::Validate, 1000, DAY + 3).unwrap();
        assert_eq!((full.status, n), (Status::ToCapture, AcquirerNotice::None));
    }

    #[test]
    fn refunds_partial_and_above_the_original() {
        let l = Lifecycle::approved(CaptureMode::AuthorCapture, 1000, DAY, 0)
            .cut_off(DAY)
            .unwrap();
        let (l, n) = l.apply(OperationKind::Refund, 400, DAY + 1).unwrap();
        assert_eq!(
            (l.status, l.refunded, l.current_amount()),
            (Status::Credited, 400, 600)
        );
        assert_eq!(n, AcquirerNotice::Refund { amount: 400 });
        let (l, _) = l.apply(OperationKind::Refund, 1500, DAY + 1).unwrap();
        assert_eq!((l.refunded, l.current_amount()), (1900, 0));
    }

    #[test]
    fn capture_day_above_six_is_six() {
        assert_eq!(applied_capture_day(0), 0);
        assert_eq!(applied_capture_day(6), 6);
        assert_eq!(applied_capture_day(9), 6);
        assert_eq!(applied_capture_day(u64::MAX), 6);
    }
}
