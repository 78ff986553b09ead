//! The flow store on RocksDB: [`RocksEngine`] implements the core's
//! [`KvEngine`](flowmesh_core::storage::KvEngine), and [`FlowStore`] is the core's
//! [`Store`] over it. Open one with [`OpenFlowStore::open`]:
//!
//! ```no_run
//! use flowmesh_actors::storage::{FlowStore, OpenFlowStore, StorageOptions};
//! let store = FlowStore::open("data/flows".as_ref(), &StorageOptions::default())?;
//! # Ok::<(), flowmesh_core::storage::StoreError>(())
//! ```

mod pending;
mod record_tier;
mod rocks;
mod tiered;

pub use flowmesh_core::storage::{
    FlowFilter, FlowId, Page, RetentionReport, Store, StoreError, StoreStats, TopField,
};
pub use rocks::{
    EngineProperties, FamilyProperties, RocksBatch, RocksEngine, RocksError, StorageOptions,
    SyncPolicy, TICKERS,
};
use std::path::Path;

/// The flow store on RocksDB.
pub type FlowStore = Store<RocksEngine>;

/// Opening a [`FlowStore`] from a directory.
pub trait OpenFlowStore: Sized {
    /// Opens (creating if needed) the flow store in `dir`.
    fn open(dir: &Path, options: &StorageOptions) -> Result<Self, StoreError>;
}

impl OpenFlowStore for FlowStore {
    fn open(dir: &Path, options: &StorageOptions) -> Result<Self, StoreError> {
        let engine =
            RocksEngine::open(dir, options).map_err(flowmesh_core::storage::EngineError::from)?;
        Store::with_engine(engine)
    }
}
