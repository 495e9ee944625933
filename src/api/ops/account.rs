//! DescribeEndpoints and DescribeLimits: the account-level questions some SDKs and tools ask
//! before anything else. Every node is an endpoint of its own; the limits are DynamoDB's
//! defaults (kvsim enforces none of them).

use crate::Result;
use crate::api::AppState;
use crate::api::ops::Request;
use crate::api::wire::{DescribeEndpointsOutput, DescribeLimitsOutput, Empty, Endpoint};

/// Runs DescribeEndpoints: the node asked.
pub async fn endpoints(app: &AppState, req: &mut Request) -> Result<DescribeEndpointsOutput> {
    endpoints_at(app.node.addr(), req).await
}

/// Runs DescribeEndpoints at the node serving `addr`.
pub async fn endpoints_at(addr: &str, req: &mut Request) -> Result<DescribeEndpointsOutput> {
    let _: Empty = req.input().await?;
    Ok(DescribeEndpointsOutput {
        endpoints: vec![Endpoint {
            address: addr.to_string(),
            cache_period_in_minutes: 1440,
        }],
    })
}

/// Runs DescribeLimits.
pub async fn limits(req: &mut Request) -> Result<DescribeLimitsOutput> {
    let _: Empty = req.input().await?;
    Ok(DescribeLimitsOutput {
        account_max_read_capacity_units: 80_000,
        account_max_write_capacity_units: 80_000,
        table_max_read_capacity_units: 40_000,
        table_max_write_capacity_units: 40_000,
    })
}
