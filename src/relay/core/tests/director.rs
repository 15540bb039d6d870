//! The Director proxy: refused when not configured, one call in flight per connection.

use super::*;
use crate::relay::DirectorConfig;

fn ask(sim: &mut Sim, id: u64) -> Vec<Action> {
    sim.text(&format!(
        r#"{{"type":"director","stream":"cam-1","id":{id}}}"#
    ))
}

#[test]
fn without_a_director_the_request_is_refused_with_its_id() {
    let mut sim = Sim::viewer(config());
    let got = ask(&mut sim, 4);
    assert!(matches!(
        &got[..],
        [Action::Send(ServerFrame::Error {
            code: ErrorCode::DirectorNotConfigured,
            id: Some(4),
            ..
        })]
    ));
}

#[test]
fn one_call_in_flight_at_a_time_and_its_answer_is_sent() {
    let config = config().director(DirectorConfig::new("http://127.0.0.1:1", "acct"));
    let mut sim = Sim::viewer(config);
    assert_eq!(
        ask(&mut sim, 1),
        [Action::Director {
            stream: cam(1),
            id: Some(1)
        }]
    );
    let got = ask(&mut sim, 2);
    assert!(matches!(
        &got[..],
        [Action::Send(ServerFrame::Error {
            code: ErrorCode::Busy,
            id: Some(2),
            ..
        })]
    ));
    let answer = ServerFrame::Pong { id: Some(1) };
    sim.session.handle_director_answer(answer.clone());
    assert_eq!(sim.drain(), [Action::Send(answer)]);
    assert_eq!(
        ask(&mut sim, 3),
        [Action::Director {
            stream: cam(1),
            id: Some(3)
        }]
    );
}
