//! Per-client-address caps: connections and views are counted per address over all its
//! connections, given back when a view or a connection ends, and an address's entry exists
//! only while it has a connection.

use std::net::IpAddr;

use super::*;
use crate::relay::broker::BrokerError;
use crate::relay::core::ClientTable;
use crate::relay::core::clients::{ClientLimit, Clients};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn view(n: u32) -> String {
    format!(r#"{{"type":"view","stream":"cam-{n}"}}"#)
}

#[test]
fn an_address_opens_at_most_its_connections_and_the_entry_goes_with_the_last() {
    let mut clients = Clients::new(2, 10);
    let (a, b) = (ip("192.0.2.1"), ip("2001:db8::1"));
    assert_eq!(clients.connect(a), Ok(()));
    assert_eq!(clients.connect(a), Ok(()));
    assert_eq!(clients.connect(a), Err(ClientLimit::Connections(2)));
    assert_eq!(
        clients.connect(b),
        Ok(()),
        "another address has its own cap"
    );
    assert_eq!(clients.len(), 2);
    clients.disconnect(a, 0);
    assert_eq!(
        clients.connect(a),
        Ok(()),
        "a freed connection is free again"
    );
    clients.disconnect(a, 0);
    clients.disconnect(a, 0);
    clients.disconnect(b, 0);
    assert_eq!(clients.len(), 0, "no connection, no entry");
    clients.disconnect(a, 3);
    assert_eq!(clients.len(), 0, "an unknown address changes nothing");
}

#[test]
fn views_need_a_connection_and_a_refused_connect_leaves_no_entry() {
    let mut clients = Clients::new(1, 2);
    let a = ip("192.0.2.1");
    assert_eq!(clients.view(a), Err(ClientLimit::Views(2)), "no connection");
    assert_eq!(clients.len(), 0);
    clients.connect(a).unwrap();
    clients.view(a).unwrap();
    clients.view(a).unwrap();
    assert_eq!(clients.view(a), Err(ClientLimit::Views(2)));
    clients.unview(a);
    clients.view(a).unwrap();
    assert_eq!(clients.usage(a), Some((1, 2)));
    // The connection ends holding both: they go back with it.
    clients.disconnect(a, 2);
    assert_eq!(clients.usage(a), None);
    let mut none = Clients::new(0, 1);
    assert!(none.connect(a).is_err());
    assert_eq!(none.len(), 0);
}

#[test]
fn views_are_capped_per_address_over_all_its_connections() {
    let mut config = config();
    config.limits.max_views_per_client = 3;
    let clients = ClientTable::new(10, 3);
    let mut one = Sim::from(&clients, config.clone(), "192.0.2.1").hello_viewer();
    let mut two = Sim::from(&clients, config.clone(), "192.0.2.1").hello_viewer();
    let mut other = Sim::from(&clients, config.clone(), "192.0.2.2").hello_viewer();
    assert_eq!(one.text(&view(1)), [Action::View { stream: cam(1) }]);
    assert_eq!(one.text(&view(2)), [Action::View { stream: cam(2) }]);
    assert_eq!(two.text(&view(3)), [Action::View { stream: cam(3) }]);
    let refused = two.text(&view(4));
    assert_eq!(errors(&refused), [(ErrorCode::ClientLimit, false)]);
    assert!(
        !refused.iter().any(|a| matches!(a, Action::View { .. })),
        "the node is not asked"
    );
    assert_eq!(
        one.text(&view(1)),
        [Action::View { stream: cam(1) }],
        "viewing a stream again takes nothing more"
    );
    assert_eq!(
        other.text(&view(4)),
        [Action::View { stream: cam(4) }],
        "another address has its own views"
    );
    // An unview gives one back.
    one.text(r#"{"type":"unview","stream":"cam-1"}"#);
    assert_eq!(two.text(&view(4)), [Action::View { stream: cam(4) }]);
    assert_eq!(clients.usage(ip("192.0.2.1")), Some((2, 3)));
}

#[test]
fn a_refused_view_and_a_leaving_connection_give_their_views_back() {
    let clients = ClientTable::new(10, 2);
    let mut one = Sim::from(&clients, config(), "192.0.2.1").hello_viewer();
    one.text(&view(1));
    one.text(&view(2));
    // The node refuses cam-2 (its table full): the address's view comes back.
    one.session
        .handle_refused(&cam(2), &BrokerError::TooManyStreams(1));
    assert_eq!(clients.usage(ip("192.0.2.1")), Some((1, 1)));
    let mut two = Sim::from(&clients, config(), "192.0.2.1").hello_viewer();
    assert_eq!(two.text(&view(3)), [Action::View { stream: cam(3) }]);
    assert_eq!(
        errors(&two.text(&view(4))),
        [(ErrorCode::ClientLimit, false)]
    );
    // `one` leaves: its view is given back at once, its connection when it is dropped.
    assert_eq!(one.session.leave(), [Action::Unview { stream: cam(1) }]);
    assert_eq!(clients.usage(ip("192.0.2.1")), Some((2, 1)));
    drop(one);
    assert_eq!(clients.usage(ip("192.0.2.1")), Some((1, 1)));
    assert_eq!(two.text(&view(4)), [Action::View { stream: cam(4) }]);
    drop(two);
    assert_eq!(
        clients.len(),
        0,
        "the last connection takes the entry with it"
    );
}

#[test]
fn a_session_dropped_without_leaving_gives_everything_back() {
    let clients = ClientTable::new(1, 4);
    let mut sim = Sim::from(&clients, config(), "192.0.2.1").hello_viewer();
    sim.text(&view(1));
    sim.text(&view(2));
    assert!(
        clients.admit(ip("192.0.2.1")).is_err(),
        "at its connection cap"
    );
    drop(sim);
    assert_eq!(clients.len(), 0);
    assert!(clients.admit(ip("192.0.2.1")).is_ok());
}
