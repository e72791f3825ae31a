//! Where the live probes stand: in nginx's own network namespace when it runs in another one
//! than fix502 (a container, a namespace of its own), so that a connect, a DNS query or a
//! protocol exchange meets what nginx's workers meet. What belongs here: entering that
//! namespace once per run, and saying from which namespace the probes were made.

use std::sync::Arc;

use fix502_probe::namespace::NamespaceIds;
use fix502_probe::netns::NetNs;

use crate::discovery::Discovery;
use crate::report::ProbedFrom;

/// The network namespace the probes of one run are made from.
#[derive(Debug, Default)]
pub struct Standpoint {
    /// The thread in nginx's network namespace; `None` when nginx's is fix502's own, or
    /// when it could not be entered.
    ns: Option<Arc<NetNs>>,
    /// Set when nginx runs in another network namespace.
    foreign: Option<Foreign>,
}

/// nginx's network namespace, when it is not fix502's.
#[derive(Debug)]
struct Foreign {
    /// The master's pid.
    pid: u32,
    /// The namespace's inode id.
    id: Option<u64>,
    /// Why it could not be entered, when it could not.
    problem: Option<String>,
}

impl Standpoint {
    /// Enters the network namespace of the discovered master when it is not fix502's own.
    /// Costs one `readlink` on a host where nginx shares fix502's namespace.
    pub fn of(discovery: &Discovery) -> Self {
        let Some(master) = discovery
            .master
            .as_ref()
            .filter(|m| m.ns.other_net_than(&NamespaceIds::own()))
        else {
            return Self::default();
        };
        let (ns, problem) = match NetNs::enter(master.pid) {
            Ok(ns) => (Some(Arc::new(ns)), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Self {
            ns,
            foreign: Some(Foreign {
                pid: master.pid,
                id: master.ns.net,
                problem,
            }),
        }
    }

    /// The namespace thread the probes use (`None`: fix502's own namespace).
    pub fn ns(&self) -> Option<Arc<NetNs>> {
        self.ns.clone()
    }

    /// A process in nginx's network namespace (its master), when that is not fix502's:
    /// the tables of `/proc/PID/net` are that namespace's.
    pub fn net_pid(&self) -> Option<u32> {
        self.foreign.as_ref().map(|f| f.pid)
    }

    /// From which namespace the probes are made, when nginx runs in another network
    /// namespace than fix502 (`None` on a plain host).
    pub fn probed_from(&self) -> Option<ProbedFrom> {
        let foreign = self.foreign.as_ref()?;
        Some(match &self.ns {
            Some(ns) => ProbedFrom {
                net: ns.id().or(foreign.id),
                nginx: true,
            },
            None => ProbedFrom {
                net: NamespaceIds::own().net,
                nginx: false,
            },
        })
    }

    /// Why nginx's network namespace could not be entered, in one line, when it could not.
    pub fn problem(&self) -> Option<String> {
        let foreign = self.foreign.as_ref()?;
        let why = foreign.problem.as_ref()?;
        let id = foreign
            .id
            .map(|n| format!(" net:[{n}]"))
            .unwrap_or_default();
        Some(format!(
            "cannot enter nginx's network namespace{id} ({why}): the probes are made from fix502's own, which nginx does not share, so they may not meet what nginx meets; run fix502 as root"
        ))
    }
}
