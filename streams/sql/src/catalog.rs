//! The default schema of a [`SqlContext`](crate::SqlContext): every topic is a table, found
//! when a query names it; other tables can be registered beside them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use fjord_client::Admin;

use crate::error::to_df;
use crate::topic::{TopicSource, TopicTable};

/// Topics as tables, discovered on first use and kept for the catalog's lifetime.
#[derive(Debug)]
pub struct TopicCatalog {
    source: TopicSource,
    admin: Arc<Admin>,
    /// Topic names as of the last refresh (for `SHOW TABLES` and existence checks).
    topics: RwLock<Vec<String>>,
    tables: tokio::sync::Mutex<HashMap<String, Arc<TopicTable>>>,
    registered: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
}

impl TopicCatalog {
    pub(crate) fn new(source: TopicSource, admin: Arc<Admin>) -> Self {
        TopicCatalog {
            source,
            admin,
            topics: RwLock::new(Vec::new()),
            tables: tokio::sync::Mutex::new(HashMap::new()),
            registered: Mutex::new(HashMap::new()),
        }
    }

    /// Re-reads the topic names.
    pub(crate) async fn refresh(&self) -> crate::Result<()> {
        let topics = self
            .admin
            .list_topics()
            .await
            .map_err(crate::Error::kafka("listing topics"))?;
        let names = topics.into_iter().map(|t| t.name).collect();
        *self.topics.write().unwrap_or_else(|p| p.into_inner()) = names;
        Ok(())
    }

    /// The table of a topic (discovered now if it was not yet).
    pub async fn topic_table(&self, topic: &str) -> crate::Result<Option<Arc<TopicTable>>> {
        let mut tables = self.tables.lock().await;
        if let Some(t) = tables.get(topic) {
            return Ok(Some(t.clone()));
        }
        let Some(table) = TopicTable::discover(&self.source, &self.admin, topic).await? else {
            return Ok(None);
        };
        let table = Arc::new(table);
        tables.insert(topic.to_string(), table.clone());
        Ok(Some(table))
    }

    /// The admin client of the context.
    pub(crate) fn admin(&self) -> &Admin {
        &self.admin
    }

    /// Forgets the discovered schema of a topic (the next query samples or fetches it again).
    pub async fn forget(&self, topic: &str) {
        self.tables.lock().await.remove(topic);
    }
}

#[async_trait]
impl SchemaProvider for TopicCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        names.extend(
            self.registered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned(),
        );
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let registered = self
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        if let Some(t) = registered {
            return Ok(Some(t));
        }
        Ok(self
            .topic_table(name)
            .await
            .map_err(to_df)?
            .map(|t| t as Arc<dyn TableProvider>))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
            || self
                .topics
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|t| t == name)
    }
}
