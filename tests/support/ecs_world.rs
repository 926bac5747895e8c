//! The test's handle on the deployment-aware ECS world that runs inside its moto server
//! (`tests/support/ecs_world.py`): drive tasks and the world's clock, and collect the
//! `ECS Deployment State Change` events ECS would have sent. The SDK never sees these endpoints;
//! they are plain HTTP on the same loopback port, under `/_world/`.

use serde_json::{json, Value};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
pub struct World {
    address: SocketAddr,
}

impl World {
    pub fn at(address: SocketAddr) -> World {
        World { address }
    }

    /// Moves the world's clock on by `seconds`; timers that fall due (bake times) fire.
    pub async fn advance(&self, seconds: u64) -> String {
        let now = self
            .post("/_world/clock", json!({ "advance_seconds": seconds }))
            .await;
        now["now"].as_str().unwrap_or_default().to_string()
    }

    /// The world's time, RFC 3339.
    pub async fn now(&self) -> String {
        let now = self.get("/_world/clock").await;
        now["now"].as_str().unwrap_or_default().to_string()
    }

    /// Starts `n` tasks of the service's primary deployment.
    pub async fn start_tasks(&self, cluster: &str, service: &str, n: u32) -> Value {
        self.post(
            "/_world/tasks",
            json!({ "cluster": cluster, "service": service, "start": n }),
        )
        .await
    }

    /// `n` tasks of the service's primary deployment fail to start.
    pub async fn fail_tasks(&self, cluster: &str, service: &str, n: u32) -> Value {
        self.post(
            "/_world/tasks",
            json!({ "cluster": cluster, "service": service, "fail": n }),
        )
        .await
    }

    /// The events ECS emitted since the last call, in emission order.
    /// The service's CodeDeploy deployment in progress fails (its replacement task set failed):
    /// CodeDeploy's answer afterwards, as the world overlays it.
    pub async fn fail_codedeploy(
        &self,
        cluster: &str,
        service: &str,
        code: &str,
        message: &str,
    ) -> Value {
        self.post(
            "/_world/codedeploy/fail",
            serde_json::json!({"cluster": cluster, "service": service, "code": code, "message": message}),
        )
        .await
    }

    /// CloudWatch alarm `name` is `state` from now (its time kept when unchanged).
    pub async fn set_alarm(&self, name: &str, state: &str, reason: &str) -> Value {
        self.post(
            "/_world/alarms",
            serde_json::json!({"name": name, "state": state, "reason": reason}),
        )
        .await
    }

    pub async fn take_events(&self) -> Vec<Value> {
        let out = self.get("/_world/events").await;
        out["events"].as_array().cloned().unwrap_or_default()
    }

    /// The newest event named `name` (`SERVICE_DEPLOYMENT_FAILED`, ...) among those emitted
    /// since the last look; the others are taken too.
    pub async fn take_event(&self, name: &str) -> Option<Value> {
        self.take_events()
            .await
            .into_iter()
            .rfind(|e| e["detail"]["eventName"] == name)
    }

    /// The world's whole view of one service: deployments, service deployments, revisions.
    pub async fn service(&self, cluster: &str, service: &str) -> Value {
        self.get(&format!(
            "/_world/service?cluster={cluster}&service={service}"
        ))
        .await
    }

    /// The lifecycle-hook invocations due now (`{"id", "payload"}`), each handed out once until
    /// it is answered.
    pub async fn due_hooks(&self) -> Vec<Value> {
        self.get("/_world/hooks").await["hooks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The hook function's answer to invocation `id`, as ECS would read it.
    pub async fn answer_hook(&self, id: &str, answer: &Value) -> Value {
        self.post(
            "/_world/hooks",
            serde_json::json!({"id": id, "answer": answer}),
        )
        .await
    }

    /// moto's default VPC subnet ids in the region, for a test that makes a load balancer.
    pub async fn subnets(&self, region: &str) -> Vec<String> {
        self.get(&format!("/_world/subnets?region={region}")).await["subnets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    }

    async fn get(&self, path: &str) -> Value {
        self.request("GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.request("POST", path, Some(body)).await
    }

    /// One HTTP/1.1 exchange on a fresh connection (`Connection: close`, so the body ends
    /// where the stream does).
    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = tokio::net::TcpStream::connect(self.address)
            .await
            .expect("connect to the world");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.address,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        let (status, rest) = answer.split_once("\r\n").unwrap_or((&answer, ""));
        let payload = rest.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        assert!(
            status.contains(" 200"),
            "world {method} {path}: {status}\n{payload}"
        );
        serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("world {method} {path}: not JSON ({e}): {payload}"))
    }
}
