-- mod_test_inject: test-only. A local client makes the server send any stanza (from the host
-- unless it names a sender) and gets the target's iq reply back:
--   C: <iq type='set' to='ya.ru' id='x'><inject xmlns='urn:test:inject'>
--        <iq type='set' to='test@ya.ru/res' id='push1'><query xmlns='yandex:push:disk'/></iq>
--      </inject></iq>
--   S -> test@ya.ru/res: <iq type='set' from='ya.ru' to='test@ya.ru/res' id='push1'>...</iq>
--   S -> C: <iq type='result' id='x'><inject xmlns='urn:test:inject'>[the reply]</inject></iq>
-- It also answers the Disk subscription <iq type='set' to='own bare JID'><s xmlns='yandex:push:disk'/></iq>.
local st = require "util.stanza";

local xmlns_inject = "urn:test:inject";
local pending = {}; -- injected iq id -> { origin, request }
local counter = 0;

module:hook("iq-set/host/" .. xmlns_inject .. ":inject", function (event)
	local origin, stanza = event.origin, event.stanza;
	local inner = stanza.tags[1].tags[1];
	if not inner then
		origin.send(st.error_reply(stanza, "modify", "bad-request", "nothing to inject"));
		return true;
	end
	inner = st.clone(inner);
	inner.attr.xmlns = nil;
	inner.attr.from = inner.attr.from or module.host;
	if inner.name == "iq" and (inner.attr.type == "get" or inner.attr.type == "set") then
		counter = counter + 1;
		inner.attr.id = inner.attr.id or ("inject-" .. counter);
		pending[inner.attr.id] = { origin = origin, request = stanza };
	else
		origin.send(st.reply(stanza));
	end
	module:log("info", "injecting %s id=%s to %s", inner.name, inner.attr.id or "-", inner.attr.to or "?");
	module:send(inner);
	return true;
end);

module:hook("iq/host", function (event)
	local stanza = event.stanza;
	if stanza.attr.type ~= "result" and stanza.attr.type ~= "error" then return; end
	local p = pending[stanza.attr.id];
	if not p then return; end
	pending[stanza.attr.id] = nil;
	local reply = st.clone(stanza);
	reply.attr.xmlns = "jabber:client";
	p.origin.send(st.reply(p.request):tag("inject", { xmlns = xmlns_inject }):add_child(reply));
	return true;
end, 20);

module:hook("iq-set/self/yandex:push:disk:s", function (event)
	event.origin.yandex_push_subscribed = true;
	module:log("info", "%s subscribed to yandex:push:disk", event.origin.full_jid or "?");
	event.origin.send(st.reply(event.stanza));
	return true;
end);
