//! Two SeaORM entities whose hooks stage mutation events.

#![allow(
    unreachable_pub,
    reason = "SeaORM's derives make the entities' items `pub`; the example and its test share them"
)]

/// An organization.
pub mod organization {
    use sea_orm::entity::prelude::*;

    /// The entity type: the topic of its mutation events.
    pub const ENTITY: &str = "Organization";

    /// A row of `organizations`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "organizations")]
    pub struct Model {
        /// The id.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// The name.
        pub name: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        async fn before_save<C: ConnectionTrait>(
            self,
            _db: &C,
            insert: bool,
        ) -> Result<Self, DbErr> {
            soiree_seaorm::before_save(ENTITY, &self, insert);
            Ok(self)
        }

        async fn after_save<C: ConnectionTrait>(
            model: Model,
            db: &C,
            insert: bool,
        ) -> Result<Model, DbErr> {
            soiree_seaorm::after_save(db, ENTITY, &model, insert).await?;
            Ok(model)
        }

        async fn after_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
            soiree_seaorm::after_delete(db, ENTITY, &self).await?;
            Ok(self)
        }
    }
}

/// An organization's billing setting.
pub mod organization_setting {
    use sea_orm::entity::prelude::*;

    /// The entity type: the topic of its mutation events.
    pub const ENTITY: &str = "OrganizationSetting";

    /// A row of `organization_settings`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "organization_settings")]
    pub struct Model {
        /// The id.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// The organization.
        pub organization_id: i32,
        /// The plan billed.
        pub plan: String,
        /// Where invoices go.
        pub billing_email: Option<String>,
    }

    /// No relations declared.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        async fn before_save<C: ConnectionTrait>(
            self,
            _db: &C,
            insert: bool,
        ) -> Result<Self, DbErr> {
            soiree_seaorm::before_save(ENTITY, &self, insert);
            Ok(self)
        }

        async fn after_save<C: ConnectionTrait>(
            model: Model,
            db: &C,
            insert: bool,
        ) -> Result<Model, DbErr> {
            soiree_seaorm::after_save(db, ENTITY, &model, insert).await?;
            Ok(model)
        }

        async fn after_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
            soiree_seaorm::after_delete(db, ENTITY, &self).await?;
            Ok(self)
        }
    }
}

/// The tables, for a database without migrations of its own.
pub const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS organizations (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS organization_settings (id INTEGER PRIMARY KEY, \
     organization_id INTEGER NOT NULL, plan TEXT NOT NULL, billing_email TEXT)",
];
