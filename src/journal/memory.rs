//! A journal backend in memory, with the SQLite backend's semantics (the
//! same contract test runs on both). Its crash model is the journal's
//! promise: what [`Backend::commit`] returned for is kept, nothing else; a
//! deterministic simulation "crashes" the switch by dropping everything
//! but this backend and recovering from it.
//!
//! Not for production: nothing survives the process.

use std::collections::{BTreeMap, HashMap};

use super::{
    claim_of, due_at, Applied, Backend, Batch, Change, Conflict, JournalError, OperationRecord,
    Recovered, RecoverySpan, ReferenceRecord, ReversalState, SafKind, SafRecord, SafState,
    TokenIdRecord, TxRecord, TxState, VaultRecord,
};

/// See the module documentation.
#[derive(Debug, Default, Clone)]
pub struct MemoryBackend {
    tx: BTreeMap<u64, TxRecord>,
    refs: HashMap<(String, String), ReferenceRecord>,
    token_ids: HashMap<(String, String), u64>,
    vault: HashMap<String, VaultRecord>,
    counters: BTreeMap<String, u64>,
    saf: BTreeMap<u64, SafRecord>,
    operations: BTreeMap<u64, OperationRecord>,
    /// Commits applied (each one durable transaction).
    pub commits: u64,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// Every transaction, by id.
    pub fn all_transactions(&self) -> impl Iterator<Item = &TxRecord> {
        self.tx.values()
    }

    /// The operations of transaction `tx_id`, oldest first.
    pub fn operations_of(&self, tx_id: u64) -> impl Iterator<Item = &OperationRecord> {
        self.operations.values().filter(move |o| o.tx_id == tx_id)
    }

    pub fn tx(&self, id: u64) -> Option<&TxRecord> {
        self.tx.get(&id)
    }

    /// Every store-and-forward message, by id.
    pub fn saf(&self) -> impl Iterator<Item = &SafRecord> {
        self.saf.values()
    }

    fn claim(&self, c: &Change) -> Option<Conflict> {
        match c {
            Change::ClaimReference {
                merchant_id,
                reference,
                window_start_ms,
                ..
            } => {
                let held = self
                    .refs
                    .get(&(merchant_id.clone(), reference.clone()))
                    .filter(|r| r.created_ms >= *window_start_ms)?;
                Some(Conflict::Reference(
                    self.tx.get(&held.tx_id).cloned().map(Box::new),
                ))
            }
            Change::ClaimTokenId {
                merchant_id,
                message_id,
                window_start_ms,
                ..
            } => self
                .token_ids
                .get(&(merchant_id.clone(), message_id.clone()))
                .filter(|seen| **seen >= *window_start_ms)
                .map(|_| Conflict::TokenId),
            _ => None,
        }
    }

    fn apply(&mut self, c: &Change) {
        match c {
            Change::ClaimReference {
                merchant_id,
                reference,
                tx_id,
                content_hash,
                now_ms,
                ..
            } => {
                self.refs.insert(
                    (merchant_id.clone(), reference.clone()),
                    ReferenceRecord {
                        merchant_id: merchant_id.clone(),
                        reference: reference.clone(),
                        tx_id: *tx_id,
                        content_hash: *content_hash,
                        created_ms: *now_ms,
                    },
                );
            }
            Change::ClaimTokenId {
                merchant_id,
                message_id,
                now_ms,
                ..
            } => {
                self.token_ids
                    .insert((merchant_id.clone(), message_id.clone()), *now_ms);
            }
            Change::ReleaseReference {
                merchant_id,
                reference,
                tx_id,
            } => {
                let key = (merchant_id.clone(), reference.clone());
                if let Some(r) = self.refs.get_mut(&key).filter(|r| r.tx_id == *tx_id) {
                    r.created_ms = 0;
                }
            }
            Change::NoteReference {
                merchant_id,
                reference,
                tx_id,
                content_hash,
                window_start_ms,
            } => {
                let key = (merchant_id.clone(), reference.clone());
                let held = self
                    .refs
                    .get(&key)
                    .is_some_and(|r| r.created_ms >= *window_start_ms);
                if !held {
                    self.refs.insert(
                        key,
                        ReferenceRecord {
                            merchant_id: merchant_id.clone(),
                            reference: reference.clone(),
                            tx_id: *tx_id,
                            content_hash: *content_hash,
                            created_ms: 0,
                        },
                    );
                }
            }
            Change::InsertTx(r) => {
                self.tx.insert(r.id, (**r).clone());
            }
            Change::UpdateTx(u) => {
                if let Some(t) = self.tx.get_mut(&u.id) {
                    t.state = u.state;
                    t.updated_ms = u.updated_ms;
                    if let Some(a) = &u.answer {
                        t.answer = Some(a.clone());
                    }
                }
            }
            Change::QueueSaf(q) => {
                // Idempotent, as in SQLite: a message written again is
                // left as it is, and so is its transaction.
                let one_reversal = q.kind == SafKind::Reversal
                    && self
                        .saf
                        .values()
                        .any(|o| o.tx_id == q.tx_id && o.kind == SafKind::Reversal);
                if self.saf.contains_key(&q.id) || one_reversal {
                    return;
                }
                self.saf.insert(q.id, (**q).clone());
                if q.kind == SafKind::Reversal {
                    if let Some(t) = self.tx.get_mut(&q.tx_id) {
                        t.reversal = ReversalState::Queued;
                    }
                }
            }
            Change::UpdateSaf(u) => {
                let is_reversal = self
                    .saf
                    .get(&u.id)
                    .is_some_and(|q| q.kind == SafKind::Reversal);
                if let Some(q) = self.saf.get_mut(&u.id) {
                    q.state = u.state;
                    q.stan = u.stan.clone();
                    q.attempts = u.attempts;
                    q.updated_ms = u.updated_ms;
                    if u.response_code.is_some() {
                        q.response_code = u.response_code.clone();
                    }
                }
                let reversal = match u.state {
                    SafState::Queued => None,
                    SafState::Acknowledged => Some(ReversalState::Acknowledged),
                    SafState::Expired => Some(ReversalState::Expired),
                };
                if let (true, Some(r), Some(t)) = (is_reversal, reversal, self.tx.get_mut(&u.tx_id))
                {
                    t.reversal = r;
                }
            }
            Change::Settle { tx_id, settlement } => {
                if let Some(t) = self.tx.get_mut(tx_id) {
                    t.settlement = Some(settlement.clone());
                }
            }
            Change::InsertOperation(o) => {
                self.operations.insert(o.id, (**o).clone());
            }
            Change::PutVault(v) => {
                self.vault.insert(v.reference.clone(), v.clone());
            }
            Change::Reserve { name, upto } => {
                let e = self.counters.entry(name.clone()).or_insert(0);
                *e = (*e).max(*upto);
            }
            Change::Prune {
                token_ids_before_ms,
                vault_before_ms,
            } => {
                self.token_ids
                    .retain(|_, seen| *seen >= *token_ids_before_ms);
                self.vault.retain(|_, v| v.expires_ms >= *vault_before_ms);
            }
        }
    }
}

impl Backend for MemoryBackend {
    fn commit(&mut self, batches: &[Batch]) -> Result<Vec<Applied>, JournalError> {
        for b in batches {
            claim_of(b)?;
        }
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            if let Some(c) = batch.first().and_then(|c| self.claim(c)) {
                out.push(Applied::Conflict(c));
                continue;
            }
            for c in batch {
                self.apply(c);
            }
            out.push(Applied::Done);
        }
        self.commits += 1;
        Ok(out)
    }

    fn recover(&mut self, span: &RecoverySpan) -> Result<Recovered, JournalError> {
        let mut references: Vec<ReferenceRecord> = self
            .tx
            .values()
            .filter(|t| t.created_ms >= span.references_since_ms && t.state != TxState::NotSent)
            .map(|t| ReferenceRecord {
                merchant_id: t.merchant_id.clone(),
                reference: t.reference.clone(),
                tx_id: t.id,
                content_hash: t.content_hash,
                created_ms: t.created_ms,
            })
            .collect();
        let skip = references.len().saturating_sub(span.references_max);
        let mut token_ids: Vec<TokenIdRecord> = self
            .token_ids
            .iter()
            .filter(|(_, seen)| **seen >= span.token_ids_since_ms)
            .map(|((m, id), seen)| TokenIdRecord {
                merchant_id: m.clone(),
                message_id: id.clone(),
                seen_ms: *seen,
            })
            .collect();
        token_ids.sort_by(|a, b| (a.seen_ms, &a.message_id).cmp(&(b.seen_ms, &b.message_id)));
        let tskip = token_ids.len().saturating_sub(span.token_ids_max);
        let mut vault: Vec<VaultRecord> = self
            .vault
            .values()
            .filter(|v| v.expires_ms > span.vault_valid_at_ms)
            .cloned()
            .collect();
        vault.sort_by(|a, b| (a.stored_ms, &a.reference).cmp(&(b.stored_ms, &b.reference)));
        let vskip = vault.len().saturating_sub(span.vault_max);
        Ok(Recovered {
            counters: self.counters.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            open: self
                .tx
                .values()
                .filter(|t| t.state == TxState::Sent)
                .cloned()
                .collect(),
            references: references.drain(skip..).collect(),
            token_ids: token_ids.into_iter().skip(tskip).collect(),
            vault: vault.into_iter().skip(vskip).collect(),
            saf: self
                .saf
                .values()
                .filter(|q| q.state == SafState::Queued)
                .cloned()
                .collect(),
        })
    }

    fn transaction(
        &mut self,
        merchant_id: &str,
        reference: &str,
    ) -> Result<Option<TxRecord>, JournalError> {
        Ok(self
            .refs
            .get(&(merchant_id.to_owned(), reference.to_owned()))
            .and_then(|r| self.tx.get(&r.tx_id))
            .cloned())
    }

    fn vault(&mut self, reference: &str) -> Result<Option<VaultRecord>, JournalError> {
        Ok(self.vault.get(reference).cloned())
    }

    fn transaction_by_id(&mut self, id: u64) -> Result<Option<TxRecord>, JournalError> {
        Ok(self.tx.get(&id).cloned())
    }

    fn saf_all(&mut self) -> Result<Vec<SafRecord>, JournalError> {
        Ok(self.saf.values().cloned().collect())
    }

    fn transactions_between(
        &mut self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<TxRecord>, JournalError> {
        let mut v: Vec<TxRecord> = self
            .tx
            .values()
            .filter(|t| (from_ms..to_ms).contains(&t.created_ms))
            .cloned()
            .collect();
        v.sort_by_key(|t| (t.created_ms, t.id));
        Ok(v)
    }

    fn operations(&mut self, tx_id: u64) -> Result<Vec<OperationRecord>, JournalError> {
        Ok(self.operations_of(tx_id).cloned().collect())
    }

    fn operations_between(
        &mut self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<OperationRecord>, JournalError> {
        let mut v: Vec<OperationRecord> = self
            .operations
            .values()
            .filter(|o| (from_ms..to_ms).contains(&o.created_ms))
            .cloned()
            .collect();
        v.sort_by_key(|o| (o.created_ms, o.id));
        Ok(v)
    }

    fn due_for_cut_off(&mut self, day: i32, limit: usize) -> Result<Vec<TxRecord>, JournalError> {
        Ok(self
            .tx
            .values()
            .filter(|t| due_at(t, day))
            .take(limit)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_backend_contract() {
        crate::journal::tests::backend_contract(&mut MemoryBackend::new());
    }
}
