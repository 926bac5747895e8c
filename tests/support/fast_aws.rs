//! The bench's fast backend (issue 16): the calls one push's deploy makes, answered from memory
//! in microseconds, so that the model's latencies and ECS's buckets set the pace of a fan-out,
//! not moto's Python (one call at a time, about 4 ms each). It speaks the same JSON protocols as
//! AWS, on loopback, behind the model's proxy; nothing in pushdeploy knows it is there.
//!
//! It answers: ECS DescribeServices, DescribeTaskDefinition, RegisterTaskDefinition,
//! UpdateService and DescribeServiceRevisions; the Tagging API's GetResources; ECR's
//! DescribeImages; DynamoDB's GetItem, PutItem, UpdateItem and TransactWriteItems, with condition
//! expressions evaluated as DynamoDB documents them (comparators, `IN`, `attribute_exists`,
//! `attribute_not_exists`, `AND`, `OR`, `NOT`, parentheses; "Condition expressions", DynamoDB
//! Developer Guide) and update expressions' `SET` and `REMOVE`. It is not a test world: ECS here
//! has no tasks and no rollouts (a deployment stays IN_PROGRESS), and only what the deploy path
//! reads is kept. `tests/it/fast_aws.rs` holds its conditions to moto's, case by case.

use super::loopback::{amz_target, serve};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

type Item = Map<String, Value>;

#[derive(Default)]
struct World {
    services: BTreeMap<String, Value>,
    definitions: BTreeMap<String, (Value, Value)>,
    families: HashMap<String, u64>,
    images: Vec<Value>,
    items: HashMap<(String, String), Item>,
    deployments: u64,
}

/// The fast backend, listening on a loopback port until dropped.
pub struct FastAws {
    pub address: SocketAddr,
    world: Arc<Mutex<World>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FastAws {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An AWS error answer: `code` as the SDKs read it from `__type`.
struct Failure {
    code: &'static str,
    message: String,
    extra: Map<String, Value>,
}

fn failure(code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
        extra: Map::new(),
    }
}

impl FastAws {
    pub async fn start() -> FastAws {
        let world = Arc::new(Mutex::new(World::default()));
        let handler_world = world.clone();
        let (address, server) = serve(move |req| answer(handler_world.clone(), req)).await;
        FastAws {
            address,
            world,
            server,
        }
    }

    /// Registers revision 1 of `family` with `containers` (name, image); its ARN.
    pub fn task_definition(&self, family: &str, containers: &[(&str, &str)]) -> String {
        let containers: Vec<Value> = containers
            .iter()
            .map(|(name, image)| json!({"name": name, "image": image, "essential": true, "memory": 128}))
            .collect();
        let request = json!({"family": family, "containerDefinitions": containers});
        let (definition, _) = self.world.lock().unwrap().register(&request);
        definition["taskDefinitionArn"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// An ACTIVE service of `cluster` on `definition`, tagged `tags`, with one current service
    /// revision.
    pub fn service(&self, cluster: &str, name: &str, definition: &str, tags: &[(&str, &str)]) {
        let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{name}");
        let tags: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let mut world = self.world.lock().unwrap();
        world.deployments += 1;
        let id = world.deployments;
        let service = json!({
            "serviceArn": arn,
            "serviceName": name,
            "clusterArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"),
            "status": "ACTIVE",
            "desiredCount": 2,
            "runningCount": 2,
            "taskDefinition": definition,
            "deploymentController": {"type": "ECS"},
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": true, "rollback": true},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100
            },
            "deployments": [deployment(id, definition, "PRIMARY", "COMPLETED")],
            "currentServiceRevisions": [{
                "arn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{cluster}/{name}/{id}"),
                "requestedTaskCount": 2,
                "runningTaskCount": 2,
                "pendingTaskCount": 0
            }],
            "tags": tags,
        });
        world.services.insert(arn, service);
    }

    /// `repository:tag` names `digest`, pushed now.
    pub fn image(&self, repository: &str, tag: &str, digest: &str) {
        let mut world = self.world.lock().unwrap();
        world.images.retain(|image| {
            image["repositoryName"] != repository || image["imageDigest"] != digest
        });
        for image in &mut world.images {
            if image["repositoryName"] == repository {
                if let Some(tags) = image["imageTags"].as_array_mut() {
                    tags.retain(|t| t != tag);
                }
            }
        }
        world.images.push(json!({
            "registryId": ACCOUNT,
            "repositoryName": repository,
            "imageDigest": digest,
            "imageTags": [tag],
            "imagePushedAt": now_seconds(),
            "imageSizeInBytes": 1024,
        }));
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn deployment(id: u64, definition: &str, status: &str, rollout: &str) -> Value {
    json!({
        "id": format!("ecs-svc/{id:019}"),
        "status": status,
        "taskDefinition": definition,
        "desiredCount": 2,
        "runningCount": if rollout == "COMPLETED" { 2 } else { 0 },
        "pendingCount": 0,
        "failedTasks": 0,
        "rolloutState": rollout,
        "createdAt": now_seconds(),
        "updatedAt": now_seconds(),
    })
}

async fn answer(
    world: Arc<Mutex<World>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let target = amz_target(&req).unwrap_or_default();
    let body = req.into_body().collect().await?.to_bytes();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (service, operation) = target.split_once('.').unwrap_or(("", ""));
    let dynamodb = service.starts_with("DynamoDB");
    let answered = {
        let mut world = world.lock().unwrap();
        world.call(service, operation, &input)
    };
    let (status, body) = match answered {
        Ok(output) => (StatusCode::OK, output),
        Err(failure) => {
            let mut body = failure.extra;
            let prefix = if dynamodb {
                "com.amazonaws.dynamodb.v20120810#"
            } else {
                ""
            };
            body.insert("__type".into(), json!(format!("{prefix}{}", failure.code)));
            body.insert("message".into(), json!(failure.message));
            (StatusCode::BAD_REQUEST, Value::Object(body))
        }
    };
    let content_type = if dynamodb {
        "application/x-amz-json-1.0"
    } else {
        "application/x-amz-json-1.1"
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header(
            "date",
            chrono::Utc::now()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
        )
        .header("x-amzn-requestid", "fast")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap())
}

impl World {
    fn call(&mut self, service: &str, operation: &str, input: &Value) -> Result<Value, Failure> {
        match (service, operation) {
            (s, "DescribeServices") if s.starts_with("AmazonEC2ContainerService") => {
                Ok(self.describe_services(input))
            }
            (_, "DescribeTaskDefinition") => self.describe_task_definition(input),
            (_, "RegisterTaskDefinition") => {
                let (definition, tags) = self.register(input);
                Ok(json!({"taskDefinition": definition, "tags": tags}))
            }
            (_, "UpdateService") => self.update_service(input),
            (_, "DescribeServiceRevisions") => Ok(self.describe_service_revisions(input)),
            (_, "GetResources") => Ok(self.get_resources(input)),
            (_, "DescribeImages") => self.describe_images(input),
            (_, "GetItem") => Ok(self.get_item(input)),
            (_, "PutItem") => self.put_item(input).map(|_| json!({})),
            (_, "UpdateItem") => self.update_item(input),
            (_, "TransactWriteItems") => self.transact(input).map(|_| json!({})),
            _ => Err(failure(
                "UnknownOperationException",
                format!("the fast backend does not answer {service}.{operation}"),
            )),
        }
    }

    fn find_service(&self, cluster: &str, service: &str) -> Option<&String> {
        let cluster = cluster.rsplit('/').next().unwrap_or(cluster);
        let name = service.rsplit('/').next().unwrap_or(service);
        let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{name}");
        self.services.get_key_value(&arn).map(|(k, _)| k)
    }

    fn describe_services(&self, input: &Value) -> Value {
        let cluster = input["cluster"].as_str().unwrap_or("default");
        let mut services = Vec::new();
        let mut failures = Vec::new();
        for name in input["services"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            match self.find_service(cluster, name) {
                Some(arn) => services.push(self.services[arn].clone()),
                None => failures.push(json!({"arn": name, "reason": "MISSING"})),
            }
        }
        json!({"services": services, "failures": failures})
    }

    fn describe_task_definition(&self, input: &Value) -> Result<Value, Failure> {
        let asked = input["taskDefinition"].as_str().unwrap_or_default();
        let arn = if asked.starts_with("arn:") {
            asked.to_string()
        } else {
            let (family, revision) = match asked.split_once(':') {
                Some((family, revision)) => (family, revision.parse().unwrap_or(0)),
                None => (asked, *self.families.get(asked).unwrap_or(&0)),
            };
            format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}")
        };
        match self.definitions.get(&arn) {
            Some((definition, tags)) => Ok(json!({"taskDefinition": definition, "tags": tags})),
            None => Err(failure(
                "ClientException",
                "Unable to describe task definition.",
            )),
        }
    }

    fn register(&mut self, input: &Value) -> (Value, Value) {
        let family = input["family"].as_str().unwrap_or_default().to_string();
        let revision = {
            let last = self.families.entry(family.clone()).or_insert(0);
            *last += 1;
            *last
        };
        let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}");
        let mut definition = input.as_object().cloned().unwrap_or_default();
        let tags = definition.remove("tags").unwrap_or(json!([]));
        definition.insert("taskDefinitionArn".into(), json!(arn));
        definition.insert("revision".into(), json!(revision));
        definition.insert("status".into(), json!("ACTIVE"));
        definition.insert("registeredAt".into(), json!(now_seconds()));
        let definition = Value::Object(definition);
        self.definitions
            .insert(arn, (definition.clone(), tags.clone()));
        (definition, tags)
    }

    fn update_service(&mut self, input: &Value) -> Result<Value, Failure> {
        let cluster = input["cluster"].as_str().unwrap_or("default");
        let name = input["service"].as_str().unwrap_or_default();
        let definition = input["taskDefinition"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !self.definitions.contains_key(&definition) {
            return Err(failure("ClientException", "TaskDefinition not found."));
        }
        let Some(arn) = self.find_service(cluster, name).cloned() else {
            return Err(failure("ServiceNotFoundException", "Service not found."));
        };
        self.deployments += 1;
        let id = self.deployments;
        let service = self.services.get_mut(&arn).unwrap();
        let mut deployments = vec![deployment(id, &definition, "PRIMARY", "IN_PROGRESS")];
        for mut old in service["deployments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            old["status"] = json!("ACTIVE");
            deployments.push(old);
        }
        service["taskDefinition"] = json!(definition);
        service["deployments"] = json!(deployments);
        Ok(json!({"service": service.clone()}))
    }

    fn describe_service_revisions(&self, input: &Value) -> Value {
        let mut revisions = Vec::new();
        for arn in input["serviceRevisionArns"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let arn = arn.as_str().unwrap_or_default();
            let service = self.services.values().find(|s| {
                s["currentServiceRevisions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["arn"] == arn)
            });
            let Some(service) = service else { continue };
            let definition = service["taskDefinition"].as_str().unwrap_or_default();
            let images: Vec<Value> = self.definitions[definition].0["containerDefinitions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    json!({
                        "containerName": c["name"],
                        "image": c["image"],
                        "imageDigest": format!("sha256:{:064}", 0),
                    })
                })
                .collect();
            revisions.push(json!({
                "serviceRevisionArn": arn,
                "serviceArn": service["serviceArn"],
                "clusterArn": service["clusterArn"],
                "taskDefinition": definition,
                "containerImages": images,
                "createdAt": now_seconds(),
            }));
        }
        json!({"serviceRevisions": revisions, "failures": []})
    }

    fn get_resources(&self, input: &Value) -> Value {
        let filters: Vec<(String, Vec<String>)> = input["TagFilters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let key = f["Key"].as_str().unwrap_or_default().to_string();
                let values = f["Values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                (key, values)
            })
            .collect();
        let matches = |service: &Value| {
            filters.iter().all(|(key, values)| {
                service["tags"].as_array().into_iter().flatten().any(|t| {
                    t["key"] == key.as_str()
                        && (values.is_empty() || values.iter().any(|v| t["value"] == v.as_str()))
                })
            })
        };
        let mappings: Vec<Value> = self
            .services
            .values()
            .filter(|s| matches(s))
            .map(|s| {
                let tags: Vec<Value> = s["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| json!({"Key": t["key"], "Value": t["value"]}))
                    .collect();
                json!({"ResourceARN": s["serviceArn"], "Tags": tags})
            })
            .collect();
        json!({"ResourceTagMappingList": mappings, "PaginationToken": ""})
    }

    fn describe_images(&self, input: &Value) -> Result<Value, Failure> {
        let repository = input["repositoryName"].as_str().unwrap_or_default();
        let wanted: Vec<&Value> = input["imageIds"].as_array().into_iter().flatten().collect();
        let found: Vec<Value> = self
            .images
            .iter()
            .filter(|image| image["repositoryName"] == repository)
            .filter(|image| {
                wanted.is_empty()
                    || wanted.iter().any(|id| {
                        id["imageDigest"] == image["imageDigest"]
                            || image["imageTags"]
                                .as_array()
                                .is_some_and(|tags| tags.contains(&id["imageTag"]))
                    })
            })
            .cloned()
            .collect();
        if found.is_empty() && !wanted.is_empty() {
            return Err(failure(
                "ImageNotFoundException",
                "The image requested does not exist",
            ));
        }
        Ok(json!({"imageDetails": found}))
    }

    fn key_of(input: &Value, item: Option<&Value>) -> (String, String) {
        let source = item.unwrap_or(&input["Key"]);
        let text = |k: &str| source[k]["S"].as_str().unwrap_or_default().to_string();
        (text("pk"), text("sk"))
    }

    fn get_item(&self, input: &Value) -> Value {
        match self.items.get(&Self::key_of(input, None)) {
            Some(item) => json!({"Item": item}),
            None => json!({}),
        }
    }

    fn put_item(&mut self, input: &Value) -> Result<Option<Item>, Failure> {
        let key = Self::key_of(input, Some(&input["Item"]));
        let old = self.checked(input, &key)?;
        let item = input["Item"].as_object().cloned().unwrap_or_default();
        self.items.insert(key, item);
        Ok(old)
    }

    fn update_item(&mut self, input: &Value) -> Result<Value, Failure> {
        let key = Self::key_of(input, None);
        let old = self.checked(input, &key)?;
        let mut item = old.clone().unwrap_or_else(|| {
            let mut item = Item::new();
            item.insert("pk".into(), json!({"S": key.0}));
            item.insert("sk".into(), json!({"S": key.1}));
            item
        });
        apply_update(&mut item, input)?;
        self.items.insert(key, item);
        Ok(match (input["ReturnValues"].as_str(), old) {
            (Some("ALL_OLD"), Some(old)) => json!({"Attributes": old}),
            _ => json!({}),
        })
    }

    /// The item at `key`, when `input`'s condition (if any) holds for it.
    fn checked(&self, input: &Value, key: &(String, String)) -> Result<Option<Item>, Failure> {
        let old = self.items.get(key).cloned();
        if let Some(condition) = input["ConditionExpression"].as_str() {
            let holds = Condition::new(input, old.as_ref()).holds(condition)?;
            if !holds {
                let mut failed = failure(
                    "ConditionalCheckFailedException",
                    "The conditional request failed",
                );
                if input["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD" {
                    if let Some(old) = &old {
                        failed.extra.insert("Item".into(), json!(old));
                    }
                }
                return Err(failed);
            }
        }
        Ok(old)
    }

    /// All or nothing: every condition is checked first, on the items as they are; any that
    /// fails cancels the transaction with one reason per item, in order.
    fn transact(&mut self, input: &Value) -> Result<(), Failure> {
        let actions: Vec<(&str, &Value)> = input["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|action| {
                let (kind, body) = action.as_object()?.iter().next()?;
                Some((kind.as_str(), body))
            })
            .collect();
        let mut reasons = Vec::new();
        let mut cancelled = false;
        for (kind, body) in &actions {
            let key = Self::key_of(body, (*kind == "Put").then(|| &body["Item"]));
            match self.checked(body, &key) {
                Ok(_) => reasons.push(json!({"Code": "None"})),
                Err(failed) => {
                    cancelled = true;
                    let mut reason =
                        json!({"Code": "ConditionalCheckFailed", "Message": failed.message});
                    if let Some(item) = failed.extra.get("Item") {
                        reason["Item"] = item.clone();
                    }
                    reasons.push(reason);
                }
            }
        }
        if cancelled {
            let mut failed = failure(
                "TransactionCanceledException",
                "Transaction cancelled, please refer cancellation reasons for specific reasons",
            );
            failed
                .extra
                .insert("CancellationReasons".into(), json!(reasons));
            return Err(failed);
        }
        for (kind, body) in actions {
            match kind {
                "Put" => {
                    self.put_item(body)?;
                }
                "Update" => {
                    self.update_item(body)?;
                }
                "Delete" => {
                    self.items.remove(&Self::key_of(body, None));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `SET a = :v, #b = :w REMOVE c, #d`: values and names from `input`.
fn apply_update(item: &mut Item, input: &Value) -> Result<(), Failure> {
    let expression = input["UpdateExpression"].as_str().unwrap_or_default();
    let names = &input["ExpressionAttributeNames"];
    let values = &input["ExpressionAttributeValues"];
    let name = |token: &str| -> String {
        match token.strip_prefix('#') {
            Some(_) => names[token].as_str().unwrap_or(token).to_string(),
            None => token.to_string(),
        }
    };
    let mut clause = "";
    for part in expression
        .replace(',', " , ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .split(|t| *t == ",")
    {
        let mut tokens = part.to_vec();
        if let Some(first) = tokens.first() {
            if *first == "SET" || *first == "REMOVE" {
                clause = if *first == "SET" { "SET" } else { "REMOVE" };
                tokens.remove(0);
            }
        }
        // A REMOVE may follow a SET clause's last assignment without a comma.
        while !tokens.is_empty() {
            if tokens[0] == "REMOVE" || tokens[0] == "SET" {
                clause = if tokens[0] == "SET" { "SET" } else { "REMOVE" };
                tokens.remove(0);
                continue;
            }
            match clause {
                "SET" if tokens.len() >= 3 && tokens[1] == "=" => {
                    let value = values.get(tokens[2]).cloned().ok_or_else(|| {
                        failure("ValidationException", format!("no value {}", tokens[2]))
                    })?;
                    item.insert(name(tokens[0]), value);
                    tokens.drain(..3);
                }
                "REMOVE" => {
                    item.remove(&name(tokens[0]));
                    tokens.remove(0);
                }
                _ => {
                    return Err(failure(
                        "ValidationException",
                        format!("the fast backend cannot read the update expression {expression}"),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// A condition expression over one item, with the request's names and values.
struct Condition<'a> {
    names: &'a Value,
    values: &'a Value,
    item: Option<&'a Item>,
    tokens: Vec<String>,
    at: usize,
}

impl<'a> Condition<'a> {
    fn new(input: &'a Value, item: Option<&'a Item>) -> Condition<'a> {
        Condition {
            names: &input["ExpressionAttributeNames"],
            values: &input["ExpressionAttributeValues"],
            item,
            tokens: Vec::new(),
            at: 0,
        }
    }

    fn holds(mut self, expression: &str) -> Result<bool, Failure> {
        let spaced = expression
            .replace('(', " ( ")
            .replace(')', " ) ")
            .replace(',', " , ")
            .replace("<>", " <> ")
            .replace("<=", " <= ")
            .replace(">=", " >= ");
        // Single `<`, `>` and `=` are spaced after the two-character ones are safe.
        let mut tokens = Vec::new();
        for token in spaced.split_whitespace() {
            if matches!(token, "<>" | "<=" | ">=") {
                tokens.push(token.to_string());
                continue;
            }
            let mut current = String::new();
            for ch in token.chars() {
                if matches!(ch, '<' | '>' | '=') {
                    if !current.is_empty() {
                        tokens.push(std::mem::take(&mut current));
                    }
                    tokens.push(ch.to_string());
                } else {
                    current.push(ch);
                }
            }
            if !current.is_empty() {
                tokens.push(current);
            }
        }
        self.tokens = tokens;
        let holds = self.or()?;
        if self.at != self.tokens.len() {
            return Err(self.unreadable());
        }
        Ok(holds)
    }

    fn unreadable(&self) -> Failure {
        failure(
            "ValidationException",
            format!("the fast backend cannot read {:?}", self.tokens.join(" ")),
        )
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Result<String, Failure> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or_else(|| self.unreadable())?;
        self.at += 1;
        Ok(token)
    }

    fn expect(&mut self, token: &str) -> Result<(), Failure> {
        if self.next()? == token {
            Ok(())
        } else {
            Err(self.unreadable())
        }
    }

    fn or(&mut self) -> Result<bool, Failure> {
        let mut holds = self.and()?;
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("OR")) {
            self.at += 1;
            let right = self.and()?;
            holds = holds || right;
        }
        Ok(holds)
    }

    fn and(&mut self) -> Result<bool, Failure> {
        let mut holds = self.unary()?;
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("AND")) {
            self.at += 1;
            let right = self.unary()?;
            holds = holds && right;
        }
        Ok(holds)
    }

    fn unary(&mut self) -> Result<bool, Failure> {
        if self.peek().is_some_and(|t| t.eq_ignore_ascii_case("NOT")) {
            self.at += 1;
            return Ok(!self.unary()?);
        }
        if self.peek() == Some("(") {
            self.at += 1;
            let holds = self.or()?;
            self.expect(")")?;
            return Ok(holds);
        }
        let first = self.next()?;
        if first == "attribute_exists" || first == "attribute_not_exists" {
            self.expect("(")?;
            let path = self.next()?;
            self.expect(")")?;
            let exists = self.attribute(&path).is_some();
            return Ok(exists == (first == "attribute_exists"));
        }
        let left = self.operand(&first);
        let operator = self.next()?;
        if operator.eq_ignore_ascii_case("IN") {
            self.expect("(")?;
            let mut any = false;
            loop {
                let token = self.next()?;
                let right = self.operand(&token);
                any |= left.is_some() && left == right;
                match self.next()?.as_str() {
                    "," => continue,
                    ")" => break,
                    _ => return Err(self.unreadable()),
                }
            }
            return Ok(any);
        }
        let token = self.next()?;
        let right = self.operand(&token);
        Ok(compare(left.as_ref(), &operator, right.as_ref()))
    }

    /// A `:value`, or an attribute of the item (`#name` or a plain name).
    fn operand(&self, token: &str) -> Option<Value> {
        if token.starts_with(':') {
            return self.values.get(token).cloned();
        }
        self.attribute(token).cloned()
    }

    fn attribute(&self, path: &str) -> Option<&'a Value> {
        let name = if path.starts_with('#') {
            self.names[path].as_str().unwrap_or(path)
        } else {
            path
        };
        self.item?.get(name)
    }
}

/// A comparison as DynamoDB makes it: false when either side is missing or they are of
/// different types; numbers as numbers, strings by their bytes.
fn compare(left: Option<&Value>, operator: &str, right: Option<&Value>) -> bool {
    let (Some(left), Some(right)) = (left, right) else {
        return false;
    };
    let ordering = match (left.get("N"), right.get("N"), left.get("S"), right.get("S")) {
        (Some(a), Some(b), _, _) => {
            let a: f64 = a.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
            let b: f64 = b.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
            a.partial_cmp(&b)
        }
        (_, _, Some(a), Some(b)) => Some(a.as_str().cmp(&b.as_str())),
        _ => None,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    use std::cmp::Ordering::*;
    match operator {
        "=" => ordering == Equal,
        "<>" => ordering != Equal,
        "<" => ordering == Less,
        "<=" => ordering != Greater,
        ">" => ordering == Greater,
        ">=" => ordering != Less,
        _ => false,
    }
}
