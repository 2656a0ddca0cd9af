//! The Lua scripts every change runs as (one script, one atomic change
//! in Redis), loaded by hash and sent again if Redis has forgotten them.

use fred::types::scripts::Script;

pub(super) struct Scripts {
    pub(super) post: Script,
    pub(super) withdraw: Script,
    pub(super) pending: Script,
    pub(super) answer: Script,
    pub(super) refuse: Script,
    pub(super) collect: Script,
    pub(super) set_push: Script,
    pub(super) forget_push: Script,
    pub(super) open_slot: Script,
    pub(super) close_slot: Script,
    pub(super) register: Script,
    pub(super) outcome: Script,
    pub(super) rate: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            post: Script::from_lua(include_str!("lua/post.lua")),
            withdraw: Script::from_lua(include_str!("lua/withdraw.lua")),
            pending: Script::from_lua(include_str!("lua/pending.lua")),
            answer: Script::from_lua(include_str!("lua/answer.lua")),
            refuse: Script::from_lua(include_str!("lua/refuse.lua")),
            collect: Script::from_lua(include_str!("lua/collect.lua")),
            set_push: Script::from_lua(include_str!("lua/set_push.lua")),
            forget_push: Script::from_lua(include_str!("lua/forget_push.lua")),
            open_slot: Script::from_lua(include_str!("lua/open_slot.lua")),
            close_slot: Script::from_lua(include_str!("lua/close_slot.lua")),
            register: Script::from_lua(include_str!("lua/register.lua")),
            outcome: Script::from_lua(include_str!("lua/outcome.lua")),
            rate: Script::from_lua(include_str!("lua/rate.lua")),
        }
    }
}
