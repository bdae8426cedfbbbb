//! Container names held by creates in flight. A create takes its name (given or
//! generated) before the slow part — snapshot, spec, bundle — and the store's unique
//! name index only sees it at the end; without a claim, two creates could both find a
//! generated name free and the second would fail on a name its client never chose.

use std::collections::HashMap;
use std::sync::Mutex;

use super::EngineError;
use crate::store::{Kind, Store};

/// Names claimed by creates that have not reached the store yet, with the id each
/// create will have.
#[derive(Default)]
pub struct NameClaims {
    in_flight: Mutex<HashMap<String, String>>,
}

/// A name held for container `id` until dropped (after its record is stored, or when
/// the create fails).
pub struct NameClaim<'a> {
    claims: &'a NameClaims,
    pub name: String,
}

impl NameClaims {
    /// Claims `name` for `id`, or says which container holds it already.
    pub fn claim<'a>(
        &'a self,
        store: &Store,
        name: &str,
        id: &str,
    ) -> Result<NameClaim<'a>, EngineError> {
        let mut in_flight = self.lock();
        let holder = match in_flight.get(name) {
            Some(other) => Some(other.clone()),
            None => store.id_by_name(Kind::Container, name)?,
        };
        if let Some(other) = holder.filter(|other| other != id) {
            return Err(EngineError::NameInUse {
                name: name.to_string(),
                other_id: other,
            });
        }
        in_flight.insert(name.to_string(), id.to_string());
        Ok(NameClaim {
            claims: self,
            name: name.to_string(),
        })
    }

    /// Generates a readable name that neither the store nor a create in flight holds,
    /// and claims it for `id`.
    pub fn claim_generated<'a>(
        &'a self,
        store: &Store,
        random: u64,
        id: &str,
    ) -> Result<NameClaim<'a>, EngineError> {
        let mut in_flight = self.lock();
        let lookup_error = std::cell::RefCell::new(None);
        let name = crate::lookup::generate_name(random, &|n| {
            in_flight.contains_key(n)
                || match store.id_by_name(Kind::Container, n) {
                    Ok(holder) => holder.is_some(),
                    Err(e) => {
                        lookup_error.borrow_mut().get_or_insert(e);
                        true
                    }
                }
        });
        if let Some(e) = lookup_error.into_inner() {
            return Err(e.into());
        }
        in_flight.insert(name.clone(), id.to_string());
        Ok(NameClaim { claims: self, name })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // The map holds no invariant a panicking holder could have broken halfway.
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for NameClaim<'_> {
    fn drop(&mut self) {
        self.claims.lock().remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_names_are_neither_generated_nor_given_twice(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("db"))?;
        let claims = NameClaims::default();
        store.put(
            Kind::Container,
            "stored",
            Some("calm_bollard"),
            &serde_json::json!({}),
        )?;
        // The same random number each time: the claims alone must tell them apart.
        let first = claims.claim_generated(&store, 25, "a")?;
        let second = claims.claim_generated(&store, 25, "b")?;
        assert_eq!(first.name, "calm_bollard1", "the stored name is skipped");
        assert_eq!(second.name, "calm_bollard2", "a name in flight is skipped");
        let err = claims.claim(&store, "calm_bollard1", "c").err();
        assert!(
            matches!(&err, Some(EngineError::NameInUse { other_id, .. }) if other_id == "a"),
            "{err:?}"
        );
        assert!(matches!(
            claims.claim(&store, "calm_bollard", "c"),
            Err(EngineError::NameInUse { .. })
        ));
        drop(first);
        let again = claims.claim(&store, "calm_bollard1", "c")?;
        assert_eq!(
            again.name, "calm_bollard1",
            "a dropped claim frees its name"
        );
        Ok(())
    }
}
