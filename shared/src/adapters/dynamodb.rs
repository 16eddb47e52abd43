//! `Table` on Amazon DynamoDB (aws-sdk-dynamodb).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update as DynamoUpdate,
};

use crate::ports::table::{
    self, AttrValue, CancelReason, Condition, Cursor, GSI1, Index, Item, Key, Page, PutOutcome,
    Query, SortKey, Table, TableError, TransactOp, Update,
};

#[derive(Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn to_av(value: &AttrValue) -> AttributeValue {
    match value {
        AttrValue::S(s) => AttributeValue::S(s.clone()),
        AttrValue::N(n) => AttributeValue::N(n.clone()),
        AttrValue::B(b) => AttributeValue::B(Blob::new(b.clone())),
        AttrValue::Bool(b) => AttributeValue::Bool(*b),
        AttrValue::Null => AttributeValue::Null(true),
        AttrValue::L(items) => AttributeValue::L(items.iter().map(to_av).collect()),
        AttrValue::M(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_av(v))).collect())
        }
    }
}

fn from_av(value: &AttributeValue) -> Result<AttrValue, TableError> {
    Ok(match value {
        AttributeValue::S(s) => AttrValue::S(s.clone()),
        AttributeValue::N(n) => AttrValue::N(n.clone()),
        AttributeValue::B(b) => AttrValue::B(b.as_ref().to_vec()),
        AttributeValue::Bool(b) => AttrValue::Bool(*b),
        AttributeValue::Null(_) => AttrValue::Null,
        AttributeValue::L(items) => {
            AttrValue::L(items.iter().map(from_av).collect::<Result<_, _>>()?)
        }
        AttributeValue::M(map) => AttrValue::M(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), from_av(v)?)))
                .collect::<Result<_, TableError>>()?,
        ),
        other => {
            return Err(TableError::Corrupt(format!(
                "unsupported attribute type {other:?}"
            )));
        }
    })
}

fn to_item(item: &Item) -> HashMap<String, AttributeValue> {
    item.iter().map(|(k, v)| (k.clone(), to_av(v))).collect()
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Item, TableError> {
    item.iter()
        .map(|(k, v)| Ok((k.clone(), from_av(v)?)))
        .collect()
}

fn key_map(key: &Key) -> HashMap<String, AttributeValue> {
    to_item(&key.to_item())
}

/// Maps any SDK error of any operation onto the port's error.
fn map_err<E, R>(err: SdkError<E, R>) -> TableError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.code() {
        Some("ConditionalCheckFailedException") => TableError::ConditionFailed,
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => TableError::Throttled,
        Some("ValidationException") => {
            TableError::Validation(err.message().unwrap_or("rejected").to_owned())
        }
        _ => TableError::Unavailable(DisplayErrorContext(&err).to_string()),
    }
}

/// Builds expression strings with placeholder names and values.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, name: &str) -> String {
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn condition(&mut self, condition: &Condition) -> String {
        let mut cmp = |name: &str, op: &str, value: &AttrValue| {
            format!("{} {op} {}", self.name(name), self.value(to_av(value)))
        };
        match condition {
            Condition::ItemNotExists => format!("attribute_not_exists({})", self.name(table::PK)),
            Condition::ItemExists => format!("attribute_exists({})", self.name(table::PK)),
            Condition::AttrExists(n) => format!("attribute_exists({})", self.name(n)),
            Condition::AttrNotExists(n) => format!("attribute_not_exists({})", self.name(n)),
            Condition::Eq(n, v) => cmp(n, "=", v),
            Condition::Ne(n, v) => cmp(n, "<>", v),
            Condition::Lt(n, v) => cmp(n, "<", v),
            Condition::Le(n, v) => cmp(n, "<=", v),
            Condition::Gt(n, v) => cmp(n, ">", v),
            Condition::Ge(n, v) => cmp(n, ">=", v),
            Condition::And(all) => self.join(all, " AND ", true),
            Condition::Or(any) => self.join(any, " OR ", false),
        }
    }

    /// An empty AND is true and an empty OR false, as the embedded evaluator has it.
    fn join(&mut self, parts: &[Condition], op: &str, empty: bool) -> String {
        if parts.is_empty() {
            let pk = self.name(table::PK);
            let glue = if empty { "OR" } else { "AND" };
            return format!("(attribute_exists({pk}) {glue} attribute_not_exists({pk}))");
        }
        let parts: Vec<String> = parts
            .iter()
            .map(|c| format!("({})", self.condition(c)))
            .collect();
        parts.join(op)
    }

    fn update(&mut self, update: &Update) -> String {
        let mut clauses = Vec::new();
        if !update.set.is_empty() {
            let set: Vec<String> = update
                .set
                .iter()
                .map(|(n, v)| format!("{} = {}", self.name(n), self.value(to_av(v))))
                .collect();
            clauses.push(format!("SET {}", set.join(", ")));
        }
        if !update.remove.is_empty() {
            let remove: Vec<String> = update.remove.iter().map(|n| self.name(n)).collect();
            clauses.push(format!("REMOVE {}", remove.join(", ")));
        }
        if !update.add.is_empty() {
            let add: Vec<String> = update
                .add
                .iter()
                .map(|(n, by)| {
                    format!(
                        "{} {}",
                        self.name(n),
                        self.value(AttributeValue::N(by.to_string()))
                    )
                })
                .collect();
            clauses.push(format!("ADD {}", add.join(", ")));
        }
        clauses.join(" ")
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

fn condition_expr(condition: Option<&Condition>) -> (Option<String>, Expr) {
    let mut expr = Expr::default();
    let text = condition.map(|c| expr.condition(c));
    (text, expr)
}

fn build_transact_item(table: &str, op: &TransactOp) -> Result<TransactWriteItem, TableError> {
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| TableError::Validation(e.to_string());
    let (condition, mut expr) = condition_expr(op.condition());
    let item = match op {
        TransactOp::Put { item, .. } => TransactWriteItem::builder().put(
            Put::builder()
                .table_name(table)
                .set_item(Some(to_item(item)))
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build()
                .map_err(invalid)?,
        ),
        TransactOp::Update { key, update, .. } => {
            let update_text = expr.update(update);
            TransactWriteItem::builder().update(
                DynamoUpdate::builder()
                    .table_name(table)
                    .set_key(Some(key_map(key)))
                    .update_expression(update_text)
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expr.names())
                    .set_expression_attribute_values(expr.values())
                    .build()
                    .map_err(invalid)?,
            )
        }
        TransactOp::Delete { key, .. } => TransactWriteItem::builder().delete(
            Delete::builder()
                .table_name(table)
                .set_key(Some(key_map(key)))
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build()
                .map_err(invalid)?,
        ),
        TransactOp::Check { key, .. } => TransactWriteItem::builder().condition_check(
            ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(key_map(key)))
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build()
                .map_err(invalid)?,
        ),
    };
    Ok(item.build())
}

fn sort_key_expr(expr: &mut Expr, sk_name: &str, sort: &SortKey) -> Option<String> {
    let mut cmp = |op: &str, v: &str| {
        format!(
            "{} {op} {}",
            expr.name(sk_name),
            expr.value(AttributeValue::S(v.to_owned()))
        )
    };
    Some(match sort {
        SortKey::Any => return None,
        SortKey::Eq(v) => cmp("=", v),
        SortKey::Lt(v) => cmp("<", v),
        SortKey::Le(v) => cmp("<=", v),
        SortKey::Gt(v) => cmp(">", v),
        SortKey::Ge(v) => cmp(">=", v),
        SortKey::BeginsWith(p) => {
            let n = expr.name(sk_name);
            let v = expr.value(AttributeValue::S(p.clone()));
            format!("begins_with({n}, {v})")
        }
        SortKey::Between(lo, hi) => {
            let n = expr.name(sk_name);
            let lo = expr.value(AttributeValue::S(lo.clone()));
            let hi = expr.value(AttributeValue::S(hi.clone()));
            format!("{n} BETWEEN {lo} AND {hi}")
        }
    })
}

impl DynamoTable {
    /// A `PutItem` of the whole item under the condition, ready to send.
    fn put_request(
        &self,
        item: &Item,
        condition: Option<&Condition>,
    ) -> Result<aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder, TableError>
    {
        table::validate_item(item)?;
        let (condition, expr) = condition_expr(condition);
        Ok(self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(item)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values()))
    }
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(map_err)?;
        out.item().map(from_item).transpose()
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        self.put_request(&item, condition.as_ref())?
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn put_or_current(
        &self,
        item: Item,
        condition: Condition,
    ) -> Result<PutOutcome, TableError> {
        let result = self
            .put_request(&item, Some(&condition))?
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => Ok(
                    PutOutcome::Refused(failed.item().map(from_item).transpose()?),
                ),
                _ => Err(map_err(err)),
            },
        }
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        update.validate()?;
        let (condition, mut expr) = condition_expr(condition.as_ref());
        let update_text = expr.update(&update);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .update_expression(update_text)
            .set_condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(map_err)?;
        out.attributes()
            .map(from_item)
            .transpose()?
            .ok_or_else(|| TableError::Unavailable("update returned no attributes".into()))
    }

    async fn delete(
        &self,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<Option<Item>, TableError> {
        let (condition, expr) = condition_expr(condition.as_ref());
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(map_err)?;
        out.attributes().map(from_item).transpose()
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        query.validate()?;
        let (pk_name, sk_name) = query.index.key_names();
        let mut expr = Expr::default();
        let mut key_condition = format!(
            "{} = {}",
            expr.name(pk_name),
            expr.value(AttributeValue::S(query.pk.clone()))
        );
        if let Some(sort) = sort_key_expr(&mut expr, sk_name, &query.sort) {
            key_condition = format!("{key_condition} AND {sort}");
        }
        let start = query
            .cursor
            .as_ref()
            .map(|c| {
                c.decode().map(|map| {
                    map.into_iter()
                        .map(|(k, v)| (k, AttributeValue::S(v)))
                        .collect::<HashMap<_, _>>()
                })
            })
            .transpose()?;
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(key_condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .scan_index_forward(query.forward)
            .set_limit(query.limit.and_then(|l| i32::try_from(l).ok()))
            .set_exclusive_start_key(start);
        request = match query.index {
            Index::Primary => request.consistent_read(true),
            Index::Gsi1 => request.index_name(GSI1),
        };
        let out = request.send().await.map_err(map_err)?;
        let items = out
            .items()
            .iter()
            .map(from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key()
            .map(|lek| {
                lek.iter()
                    .map(|(k, v)| match v {
                        AttributeValue::S(s) => Ok((k.clone(), s.clone())),
                        _ => Err(TableError::Corrupt("non-string key attribute".into())),
                    })
                    .collect::<Result<BTreeMap<_, _>, _>>()
            })
            .transpose()?
            .map(|map| Cursor::encode(&map));
        Ok(Page { items, next })
    }

    async fn transact_write(&self, ops: Vec<TransactOp>) -> Result<(), TableError> {
        table::validate_transaction(&ops)?;
        let items = ops
            .iter()
            .map(|op| build_transact_item(&self.table, op))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                    Err(TableError::TransactionCanceled {
                        reasons: e
                            .cancellation_reasons()
                            .iter()
                            .map(|r| match r.code() {
                                None | Some("None") => CancelReason::None,
                                Some("ConditionalCheckFailed") => CancelReason::ConditionFailed,
                                Some(other) => CancelReason::Other(other.to_owned()),
                            })
                            .collect(),
                    })
                }
                _ => Err(map_err(err)),
            },
        }
    }
}
