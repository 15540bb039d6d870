//! 307 and 308 redirects are followed with the request body, for the Director and WHEP.

use relive::testkit::millicast::{DirectorFault, MillicastServer, WhepFault};

use crate::{CAM, millicast, policy, whep};

#[tokio::test]
async fn the_director_is_followed_through_307_and_308_with_the_body() {
    for status in [307, 308] {
        let server = MillicastServer::start().await.unwrap();
        server.publish(CAM);
        server.set_director_fault_for(DirectorFault::Redirect(status), 1);
        let mut w = millicast(&server, policy());
        w.until_playing().await;
        // One redirected request and the one that followed it, in one attempt: a lost body
        // would have been refused (400) and retried.
        assert_eq!(server.director_requests(), 2, "{status}\n{}", w.dump());
        assert!(w.errors.is_empty(), "{status}\n{}", w.dump());
    }
}

#[tokio::test]
async fn a_whep_offer_is_followed_through_307_and_308_with_its_sdp() {
    for status in [307, 308] {
        let server = MillicastServer::start().await.unwrap();
        server.publish(CAM);
        server.set_whep_fault_for(WhepFault::Redirect(status), 1);
        let mut w = whep(&server, policy());
        w.until_playing().await;
        assert_eq!(server.whep_requests(), 2, "{status}\n{}", w.dump());
        assert!(w.errors.is_empty(), "{status}\n{}", w.dump());
        assert_eq!(server.whep_sessions(CAM), 1);
    }
}
