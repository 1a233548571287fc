//! The escape suite: attacks a hostile process inside the sandbox would try,
//! run against the real binary in a real sandbox (see issue 7).
//!
//! One module per category under tests/escape/; `support` holds the case
//! set-up (canaries planted outside the sandbox) and the snippet prologues.
//! Every test runs in every harness mode and checks that the attack failed,
//! that it failed for the stated reason (an exact errno or verdict), and that
//! no canary leaked.

mod common;

#[path = "escape/support.rs"]
mod support;

#[path = "escape/proc_env.rs"]
mod proc_env;

#[path = "escape/processes.rs"]
mod processes;

#[path = "escape/files.rs"]
mod files;

#[path = "escape/view.rs"]
mod view;

#[path = "escape/caps.rs"]
mod caps;

#[path = "escape/network.rs"]
mod network;

#[path = "escape/terminal.rs"]
mod terminal;

#[path = "escape/syscalls.rs"]
mod syscalls;

#[path = "escape/resources.rs"]
mod resources;

#[path = "escape/controls.rs"]
mod controls;

#[path = "escape/host_side.rs"]
mod host_side;

#[path = "escape/agent_home.rs"]
mod agent_home;

#[path = "escape/secrets_layer.rs"]
mod secrets_layer;

#[path = "escape/egress_layer.rs"]
mod egress_layer;

#[path = "escape/protection.rs"]
mod protection;

#[path = "escape/review4.rs"]
mod review4;

#[path = "escape/review5.rs"]
mod review5;

#[path = "escape/review6.rs"]
mod review6;

#[path = "escape/review7.rs"]
mod review7;

#[path = "escape/review8.rs"]
mod review8;

#[path = "escape/review10.rs"]
mod review10;
#[path = "escape/review11.rs"]
mod review11;
#[path = "escape/review12.rs"]
mod review12;
#[path = "escape/review13.rs"]
mod review13;
#[path = "escape/review14.rs"]
mod review14;
#[path = "escape/review16.rs"]
mod review16;
#[path = "escape/review18.rs"]
mod review18;
#[path = "escape/review19.rs"]
mod review19;
#[path = "escape/review20.rs"]
mod review20;
#[path = "escape/review21.rs"]
mod review21;
#[path = "escape/review22.rs"]
mod review22;
#[path = "escape/review23.rs"]
mod review23;
#[path = "escape/review24.rs"]
mod review24;
#[path = "escape/review25.rs"]
mod review25;

#[path = "escape/review27.rs"]
mod review27;
#[path = "escape/review30.rs"]
mod review30;
#[path = "escape/review31.rs"]
mod review31;
#[path = "escape/review32.rs"]
mod review32;
#[path = "escape/review9.rs"]
mod review9;

#[path = "escape/review33.rs"]
mod review33;
