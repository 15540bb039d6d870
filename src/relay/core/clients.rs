//! [`Clients`]: what each client address holds — WebSocket connections and views — against the
//! per-address caps, and [`client_address`]: which address a connection counts under when it
//! came through a trusted proxy. Both pure: no socket, no clock, no log.
//!
//! The table has an entry for an address only while that address has a connection: an entry is
//! made by the first [`Clients::connect`] and removed with the last [`Clients::disconnect`]
//! (which also gives back every view that connection still held), so its size is bounded by the
//! relay's `max_connections`, whatever the addresses.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;

/// Which cap a client address reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientLimit {
    /// `max_connections_per_client` connections are open from it.
    Connections(usize),
    /// Its connections view `max_views_per_client` streams in all.
    Views(usize),
}

impl std::fmt::Display for ClientLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientLimit::Connections(max) => {
                write!(f, "at most {max} connections per client address")
            }
            ClientLimit::Views(max) => write!(f, "at most {max} views per client address"),
        }
    }
}

/// What one address holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Usage {
    connections: usize,
    views: usize,
}

/// The per-address table, with its caps.
#[derive(Debug)]
pub(crate) struct Clients {
    table: HashMap<IpAddr, Usage>,
    max_connections: usize,
    max_views: usize,
}

impl Clients {
    /// A table allowing each address `max_connections` connections and `max_views` views.
    pub(crate) fn new(max_connections: usize, max_views: usize) -> Self {
        Clients {
            table: HashMap::new(),
            max_connections,
            max_views,
        }
    }

    /// A connection from `client` opens, unless the address is at its cap.
    pub(crate) fn connect(&mut self, client: IpAddr) -> Result<(), ClientLimit> {
        let usage = self.table.entry(client).or_default();
        if usage.connections >= self.max_connections {
            if usage.connections == 0 {
                // A cap of 0 admits nobody; never leave an empty entry behind.
                self.table.remove(&client);
            }
            return Err(ClientLimit::Connections(self.max_connections));
        }
        usage.connections += 1;
        Ok(())
    }

    /// A connection from `client` that still held `views` views ends: the views are given back,
    /// and the entry goes with the address's last connection.
    pub(crate) fn disconnect(&mut self, client: IpAddr, views: usize) {
        if let Entry::Occupied(mut entry) = self.table.entry(client) {
            let usage = entry.get_mut();
            usage.views = usage.views.saturating_sub(views);
            usage.connections = usage.connections.saturating_sub(1);
            if usage.connections == 0 {
                entry.remove();
            }
        }
    }

    /// A connection from `client` views one more stream, unless the address is at its cap (or
    /// has no connection, which a caller holding one never sees).
    pub(crate) fn view(&mut self, client: IpAddr) -> Result<(), ClientLimit> {
        match self.table.get_mut(&client) {
            Some(usage) if usage.views < self.max_views => {
                usage.views += 1;
                Ok(())
            }
            _ => Err(ClientLimit::Views(self.max_views)),
        }
    }

    /// A connection from `client` stops viewing one stream.
    pub(crate) fn unview(&mut self, client: IpAddr) {
        if let Some(usage) = self.table.get_mut(&client) {
            usage.views = usage.views.saturating_sub(1);
        }
    }

    /// Addresses with at least one connection.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// What `client` holds: `(connections, views)`.
    pub(crate) fn usage(&self, client: IpAddr) -> Option<(usize, usize)> {
        self.table.get(&client).map(|u| (u.connections, u.views))
    }
}

/// The relay's per-address table, shared by its connections (each takes the lock for one
/// decision, never across an await).
#[derive(Clone, Debug)]
pub(crate) struct ClientTable(Arc<Mutex<Clients>>);

impl ClientTable {
    /// A shared table with these caps.
    pub(crate) fn new(max_connections: usize, max_views: usize) -> Self {
        ClientTable(Arc::new(Mutex::new(Clients::new(
            max_connections,
            max_views,
        ))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Clients) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Admits a connection from `client`: the [`ClientSlot`] holds it (and its views) until it
    /// drops.
    pub(crate) fn admit(&self, client: IpAddr) -> Result<ClientSlot, ClientLimit> {
        self.with(|clients| clients.connect(client))?;
        Ok(ClientSlot {
            table: self.clone(),
            client,
            views: 0,
        })
    }

    /// Addresses with at least one connection.
    pub(crate) fn len(&self) -> usize {
        self.with(|clients| clients.len())
    }

    /// What `client` holds: `(connections, views)`.
    pub(crate) fn usage(&self, client: IpAddr) -> Option<(usize, usize)> {
        self.with(|clients| clients.usage(client))
    }
}

/// One admitted connection's share of its address's allowance; dropping it gives back the
/// connection and every view still held, so no exit path can leak an entry.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    table: ClientTable,
    client: IpAddr,
    views: usize,
}

impl ClientSlot {
    /// The address the connection counts under.
    pub(crate) fn client(&self) -> IpAddr {
        self.client
    }

    /// Takes one view of the address's allowance.
    pub(crate) fn take_view(&mut self) -> Result<(), ClientLimit> {
        self.table.with(|clients| clients.view(self.client))?;
        self.views += 1;
        Ok(())
    }

    /// Gives one view back (none held: nothing happens).
    pub(crate) fn give_view(&mut self) {
        if self.views > 0 {
            self.views -= 1;
            self.table.with(|clients| clients.unview(self.client));
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let (client, views) = (self.client, self.views);
        self.table.with(|clients| clients.disconnect(client, views));
    }
}

/// Why the forwarding headers of a trusted proxy were not used (the TCP peer was).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ForwardedError {
    /// An entry is not an IP address (`unknown`, an obfuscated `_name`, garbage).
    NotAnAddress,
    /// The header is not of its grammar (a `Forwarded` element without `for=`, bad quoting).
    Malformed,
}

impl std::fmt::Display for ForwardedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ForwardedError::NotAnAddress => "an entry is not an IP address",
            ForwardedError::Malformed => "not of the header's grammar",
        })
    }
}

/// Entries of a forwarding chain read at most, from the right: a proxy chain longer than this
/// is not trusted to be one.
const MAX_HOPS: usize = 32;

/// The address a connection counts under: the TCP `peer`, unless `peer` is one of the
/// `trusted` proxies; then the right-most address of the forwarding chain that is not a
/// trusted proxy (proxies append on the right, so everything left of the first untrusted hop
/// may be forged by the client). The chain is `forwarded` (`Forwarded: for=`, RFC 7239) when
/// there is one, else `x_forwarded_for` (each the header's lines in order). A chain of trusted
/// proxies only gives its left-most entry; no chain gives `peer`.
///
/// A malformed chain gives `peer` with the error, for the shell to log.
pub(crate) fn client_address(
    peer: IpAddr,
    trusted: &[IpNet],
    forwarded: &[&str],
    x_forwarded_for: &[&str],
) -> (IpAddr, Option<ForwardedError>) {
    let peer = canonical(peer);
    let is_trusted = |addr: &IpAddr| trusted.iter().any(|net| net.contains(addr));
    if !is_trusted(&peer) {
        return (peer, None);
    }
    let (lines, parse): (_, Parse) = if forwarded.iter().any(|line| !line.trim().is_empty()) {
        (forwarded, forwarded_for)
    } else {
        (x_forwarded_for, |entry| parse_addr(entry.trim()))
    };
    let chain = hops(lines, parse);
    let mut client = peer;
    for hop in chain.take(MAX_HOPS) {
        match hop {
            Ok(addr) => {
                client = addr;
                if !is_trusted(&addr) {
                    return (addr, None);
                }
            }
            Err(error) => return (peer, Some(error)),
        }
    }
    (client, None)
}

/// How one entry of a forwarding header is read.
type Parse = fn(&str) -> Result<IpAddr, ForwardedError>;

/// The entries of a comma-separated header, right to left, each read by `parse`.
fn hops<'a>(
    lines: &'a [&'a str],
    parse: Parse,
) -> impl Iterator<Item = Result<IpAddr, ForwardedError>> + 'a {
    lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(','))
        .filter(|entry| !entry.trim().is_empty())
        .map(move |entry| parse(entry).map(canonical))
}

/// The `for=` address of one `Forwarded` element (`for=192.0.2.1;proto=https`,
/// `for="[2001:db8::1]:4711"`).
fn forwarded_for(element: &str) -> Result<IpAddr, ForwardedError> {
    let value = element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
        .map(|(_, value)| value.trim())
        .ok_or(ForwardedError::Malformed)?;
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"').ok_or(ForwardedError::Malformed)?,
        None => value,
    };
    parse_addr(value)
}

/// An address with an optional port: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`, and
/// (in `X-Forwarded-For`) a bare `2001:db8::1`.
fn parse_addr(text: &str) -> Result<IpAddr, ForwardedError> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(addr);
    }
    if let Ok(socket) = text.parse::<std::net::SocketAddr>() {
        return Ok(socket.ip());
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner.parse().map_err(|_| ForwardedError::NotAnAddress);
    }
    Err(ForwardedError::NotAnAddress)
}

/// An IPv4 address mapped into IPv6 (a dual-stack socket's peer) counts as the IPv4 one.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}
