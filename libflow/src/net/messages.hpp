#pragma once

// The messages of flow::net's own protocol, between the coordinator's entry
// actor, the worker node actors and the task sources: every name in one
// place, with who sends it to whom and what it carries. Nodes of different
// builds talk to each other, so a name (the atom's text) and the types that
// travel with it never change; add a new atom instead.
//
// Not here: the engine's messages that also cross the network (`f_join`,
// `flow.batch`, `flow.partial`, in flow/detail/messages.hpp), since the
// manager speaks them to local reducers as well.

#include <caf/atom.hpp>

namespace flow::net {

// -- joining ------------------------------------------------------------------

/// node -> entry: (hello_atom, node actor, node name, uint64 reducers: the
/// tasks it runs at once); answered welcome_atom.
using hello_atom = caf::atom_constant<caf::atom("f_hello")>;

/// entry -> node: the answer to hello_atom: joined.
using welcome_atom = caf::atom_constant<caf::atom("f_welcome")>;

// -- jobs that borrow reducers ------------------------------------------------

/// coordinator -> entry, then entry -> every node: (job_atom, manager,
/// reducer name): a job to lend reducers to.
using job_atom = caf::atom_constant<caf::atom("f_job")>;

// -- counts -------------------------------------------------------------------

/// coordinator -> entry: (count_atom), answered with the uint64 number of
/// nodes connected now.
using count_atom = caf::atom_constant<caf::atom("f_count")>;

/// -> entry: nodes that joined so far, including those that left.
using joined_atom = caf::atom_constant<caf::atom("f_joined")>;

// -- tasks --------------------------------------------------------------------

/// requester -> entry: (run_atom, kind, payload, requester); the answer is
/// (answer_atom, job_result) or (answer_atom, error), sent to the requester,
/// which also monitors the entry (CAF 0.17 drops a pending response promise
/// silently when its actor ends, so no promise is kept).
using run_atom = caf::atom_constant<caf::atom("f_run")>;

/// entry -> requester: (answer_atom, job_result) or (answer_atom, error):
/// the outcome of its run_atom.
using answer_atom = caf::atom_constant<caf::atom("f_answer")>;

/// entry -> requester: (started_atom, node name): its task went to that
/// node (again, after a lost node); for the job's statistics. Stays in the
/// manager's process.
using started_atom = caf::atom_constant<caf::atom("f_started")>;

/// requester -> entry: (withdraw_atom, requester): its task is not wanted
/// any more (the job ended); dropped if still queued.
using withdraw_atom = caf::atom_constant<caf::atom("f_withdra")>;

/// entry -> node: (task_atom, uint64 id, kind, payload).
using task_atom = caf::atom_constant<caf::atom("f_task")>;

/// node -> entry: (done_atom, uint64 id, job_result). Also task runner ->
/// its node actor, which passes it on.
using done_atom = caf::atom_constant<caf::atom("f_done")>;

/// entry -> itself: (speculate_atom) looks for straggling tasks (ignored
/// from anyone else).
using speculate_atom = caf::atom_constant<caf::atom("f_specul")>;

/// node -> entry: (failed_atom, uint64 id, uint8 errc code, context). Also
/// task runner -> its node actor, which passes it on.
using failed_atom = caf::atom_constant<caf::atom("f_failed")>;

} // namespace flow::net
