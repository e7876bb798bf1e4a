//! `GET /`: the status page for people. One self-contained HTML page (no
//! script, no external asset, so it works behind any proxy): the agents and
//! their state, how agents prove their names, and the endpoints to use.

use core::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::Gateway;

/// The most agents listed by name; past it the page says how many more
/// there are (the counts and the JSON endpoints have them all).
const MAX_LISTED: usize = 1000;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left}\
.up{color:#1a7f37}.down{color:#cf222e}code{background:#f4f4f4;padding:0 .2em}";

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "42s", "3m 5s", "2h 10m", "4d 1h".
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `GET /`.
pub(crate) async fn page(State(gateway): State<Arc<Gateway>>) -> Response {
    let html = render(&gateway);
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response()
}

fn render(gateway: &Gateway) -> String {
    let agents = gateway.registry.agents();
    let counts = gateway.registry.counts();
    let auth = gateway.auth.current();
    let now = Instant::now();
    let mut html = String::with_capacity(4096 + agents.len().min(MAX_LISTED) * 256);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>promrelay gateway</title><style>{STYLE}</style></head><body>\
         <h1>promrelay gateway</h1><p>Version {version}. \
         <strong id=\"connected\">{connected}</strong> agents connected, \
         <strong id=\"known\">{known}</strong> known.</p>",
        version = env!("CARGO_PKG_VERSION"),
        connected = counts.connected,
        known = counts.known,
    );

    html.push_str("<h2>Agents</h2>");
    if agents.is_empty() {
        html.push_str(
            "<p id=\"no-agents\">No agent has connected yet. Start one with \
             <code>promrelay agent --gateway.url=URL --agent.name=NAME \
             --agent.token-file=FILE</code>, giving it the agent token this \
             gateway announced in its log at start.</p>",
        );
    } else {
        html.push_str(
            "<table id=\"agents\"><tr><th>Agent</th><th>State</th><th>For</th>\
             <th>Credential</th><th>Scrape</th></tr>",
        );
        for agent in agents.iter().take(MAX_LISTED) {
            let name = escape(&agent.name);
            let (class, state) = if agent.connected {
                ("up", "connected")
            } else {
                ("down", "disconnected")
            };
            let _ = write!(
                html,
                "<tr><td>{name}</td><td class=\"{class}\">{state}</td><td>{age}</td>\
                 <td>{credential}</td><td><a href=\"agents/{name}/metrics\">metrics</a></td></tr>",
                age = age(now.saturating_duration_since(agent.since).as_secs()),
                credential = escape(credential_kind(agent.credential.as_str())),
            );
        }
        html.push_str("</table>");
        if agents.len() > MAX_LISTED {
            let _ = write!(
                html,
                "<p>… and {} more (see <a href=\"clients\">clients</a>).</p>",
                agents.len() - MAX_LISTED
            );
        }
    }

    let clients = gateway.pushprox.clients();
    if !clients.is_empty() {
        html.push_str(
            "<h2>PushProx clients</h2><table id=\"pushprox\"><tr><th>Client</th>\
             <th>Last poll</th><th>Waiting poll</th><th>Scrapes in flight</th></tr>",
        );
        for client in clients.iter().take(MAX_LISTED) {
            let _ = write!(
                html,
                "<tr><td>{name}</td><td>{age} ago</td><td>{polling}</td><td>{scrapes}</td></tr>",
                name = escape(&client.name),
                age = age(now.saturating_duration_since(client.last_poll).as_secs()),
                polling = if client.polling { "yes" } else { "no" },
                scrapes = client.scrapes,
            );
        }
        html.push_str("</table>");
    }

    let _ = write!(
        html,
        "<h2>Agent credentials</h2><ul id=\"credentials\">\
         <li>Shared token: {shared}</li><li>Agents with their own token: {own}</li>\
         <li>Client certificates: {certs}</li></ul>",
        shared = if auth.has_shared_token() {
            "configured"
        } else {
            "none"
        },
        own = auth.agent_tokens(),
        certs = if auth.accepts_client_certificates() {
            "accepted (name = common name)"
        } else {
            "not accepted"
        },
    );

    html.push_str(
        "<h2>Endpoints</h2><ul>\
         <li><code>/agents/&lt;agent&gt;/metrics</code>: one agent's merged page</li>\
         <li><code>/agents/&lt;agent&gt;/sources/&lt;source&gt;/metrics</code>: one source</li>\
         <li><a href=\"metrics/connected\">/metrics/connected</a>: every agent at once</li>\
         <li><code>proxy_url: http://this-gateway</code> with targets <code>&lt;agent&gt;:&lt;port&gt;</code></li>\
         <li><a href=\"api/v1/sd\">/api/v1/sd</a>: targets for <code>http_sd_configs</code></li>\
         <li><a href=\"clients\">/clients</a>: agents in the PushProx shape</li>\
         <li><a href=\"metrics\">/metrics</a>: the gateway's own metrics</li>\
         </ul></body></html>\n",
    );
    html
}

/// The kind of a credential id, without the name it repeats.
fn credential_kind(id: &str) -> &'static str {
    match id.split_once(':').map_or(id, |(kind, _)| kind) {
        "shared" => "shared token",
        "token" => "own token",
        "cert" => "client certificate",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(185), "3m 5s");
        assert_eq!(age(7800), "2h 10m");
        assert_eq!(age(90_000), "1d 1h");
    }
}
