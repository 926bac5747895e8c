//! The test listener's base URL, found from the service's load balancer when no tag or rule
//! names it: the service's `loadBalancers[].advancedConfiguration.testListenerRule` ("the test
//! listener rule (in the case of an Application Load Balancer) or listener (in the case for an
//! Network Load Balancer) for routing test traffic", API `AdvancedConfiguration`), its listener's
//! protocol and port (ELBv2 `DescribeListeners`), and its load balancer's DNS name
//! (`DescribeLoadBalancers`). Only the gate links the ELBv2 client.

use crate::aws::AwsError;
use aws_sdk_ecs::types::Service;

/// The service's test listener rule (or an NLB's test listener), when it names one.
pub(crate) fn test_listener_rule(service: &Service) -> Option<&str> {
    service
        .load_balancers()
        .iter()
        .find_map(|lb| lb.advanced_configuration()?.test_listener_rule())
}

/// The listener a rule ARN belongs to:
/// `arn:…:listener-rule/app/<name>/<lb-id>/<listener-id>/<rule-id>` is a rule of
/// `arn:…:listener/app/<name>/<lb-id>/<listener-id>`; a listener ARN is its own.
pub(crate) fn listener_of(arn: &str) -> Option<String> {
    if arn.contains(":listener/") {
        return Some(arn.to_string());
    }
    let (head, path) = arn.split_once(":listener-rule/")?;
    let (listener, rule) = path.rsplit_once('/')?;
    (!rule.is_empty() && listener.split('/').count() == 4)
        .then(|| format!("{head}:listener/{listener}"))
}

/// `http://<dns>:<port>` (or https, for an HTTPS or TLS listener).
pub(crate) fn base_url(protocol: &str, dns_name: &str, port: i32) -> String {
    let scheme = match protocol {
        "HTTPS" | "TLS" => "https",
        _ => "http",
    };
    format!("{scheme}://{dns_name}:{port}")
}

/// ELBv2 reads, with the project's error mapping.
#[derive(Clone)]
pub(crate) struct Listeners {
    elb: aws_sdk_elasticloadbalancingv2::Client,
}

impl Listeners {
    pub(crate) fn new(sdk: &aws_config::SdkConfig) -> Listeners {
        Listeners {
            elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
        }
    }

    /// The base URL of the listener `rule_arn` belongs to; `Ok(None)` when ELBv2 does not
    /// know it.
    pub(crate) async fn base_url_of(&self, rule_arn: &str) -> Result<Option<String>, AwsError> {
        let Some(listener_arn) = listener_of(rule_arn) else {
            return Ok(None);
        };
        let listeners = self
            .elb
            .describe_listeners()
            .listener_arns(&listener_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeListeners", e))?;
        let Some(listener) = listeners.listeners().first() else {
            return Ok(None);
        };
        let (Some(lb_arn), Some(port)) = (listener.load_balancer_arn(), listener.port()) else {
            return Ok(None);
        };
        let protocol = listener.protocol().map(|p| p.as_str()).unwrap_or("HTTP");
        let balancers = self
            .elb
            .describe_load_balancers()
            .load_balancer_arns(lb_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeLoadBalancers", e))?;
        Ok(balancers
            .load_balancers()
            .first()
            .and_then(|lb| lb.dns_name())
            .map(|dns| base_url(protocol, dns, port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_belongs_to_its_listener_and_a_listener_to_itself() {
        let rule = "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
        assert_eq!(
            listener_of(rule).as_deref(),
            Some("arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2")
        );
        let nlb = "arn:aws:elasticloadbalancing:us-east-1:1:listener/net/web/50dc6c495c0c9188/f2f7dc8efc522ab2";
        assert_eq!(listener_of(nlb).as_deref(), Some(nlb));
        assert_eq!(
            listener_of("arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/web"),
            None
        );
        assert_eq!(
            base_url("HTTP", "internal-web.elb.amazonaws.com", 8080),
            "http://internal-web.elb.amazonaws.com:8080"
        );
        assert_eq!(
            base_url("HTTPS", "web.example", 8443),
            "https://web.example:8443"
        );
    }
}
