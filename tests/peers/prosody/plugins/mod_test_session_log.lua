-- mod_test_session_log: test-only. Logs, at info level and with the full JID, what the tests
-- check from the server's side: how each session's stream is secured and compressed when it
-- binds, and who closed it ("by the client" means the client sent </stream:stream>; a TCP
-- close without it is only logged by mod_c2s as "Client disconnected: <error>").
module:hook("resource-bind", function (event)
	local session = event.session;
	module:log("info", "bound %s (secure: %s, compressed: %s)", session.full_jid or "?",
		tostring(session.secure or false), tostring(session.compressed or false));
end);

module:hook("pre-session-close", function (event)
	local session, reason = event.session, event.reason;
	local how;
	if reason == false then
		how = "by the client";
	elseif reason == nil then
		how = "by the server";
	else
		how = "with error " .. tostring(type(reason) == "table" and (reason.condition or reason.text) or reason);
	end
	module:log("info", "session %s closed %s", session.full_jid or "(not bound)", how);
end);
