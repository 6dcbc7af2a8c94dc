-- mod_s2c_ping: test-only. Every `s2c_ping_interval` seconds (default 5) the host sends a
-- XEP-0199 ping to each bound c2s session. Answers are logged ("ping ... answered").
-- With `s2c_ping_kill = true`, a session that has not answered its previous ping by the next
-- tick is closed with <connection-timeout/>, like ejabberd's mod_ping timeout_action: kill.
local st = require "util.stanza";

local interval = module:get_option_number("s2c_ping_interval", 5);
local kill = module:get_option_boolean("s2c_ping_kill", false);
local counter = 0;
local outstanding = {}; -- ping id -> session

module:hook("resource-bind", function (event)
	local session = event.session;
	module:add_timer(interval, function ()
		if session.destroyed or not session.full_jid then return; end -- stops the timer
		local pending = session.s2c_ping_pending;
		if pending and kill then
			outstanding[pending] = nil;
			module:log("info", "ping %s to %s unanswered, closing the session", pending, session.full_jid);
			session:close({ condition = "connection-timeout", text = "no answer to the server's ping" });
			return;
		end
		counter = counter + 1;
		local id = "s2c-ping-" .. counter;
		session.s2c_ping_pending = id;
		outstanding[id] = session;
		session.send(st.iq({ type = "get", from = module.host, to = session.full_jid, id = id })
			:tag("ping", { xmlns = "urn:xmpp:ping" }));
		return interval; -- reschedule
	end);
end);

module:hook("iq/host", function (event)
	local stanza, origin = event.stanza, event.origin;
	local id, kind = stanza.attr.id, stanza.attr.type;
	local session = id and outstanding[id];
	if not session or (kind ~= "result" and kind ~= "error") then return; end
	if origin ~= session then return; end -- only the pinged session can answer
	outstanding[id] = nil;
	if session.s2c_ping_pending == id then session.s2c_ping_pending = nil; end
	module:log("info", "ping %s answered (%s) by %s", id, kind, session.full_jid or "?");
	return true;
end, 10);
