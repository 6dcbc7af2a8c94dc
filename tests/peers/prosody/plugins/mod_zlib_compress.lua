-- mod_zlib_compress: test-only XEP-0138 stream compression (zlib) for c2s, offered once the
-- stream is encrypted, before and after SASL (as push.xmpp.yandex.ru does). Needs lua-zlib.
local zlib = require "zlib";
local st = require "util.stanza";
local add_filter = require "util.filters".add_filter;

local xmlns_feature = "http://jabber.org/features/compress";
local xmlns_protocol = "http://jabber.org/protocol/compress";
local level = module:get_option_number("zlib_compress_level", 6);

module:hook("stream-features", function (event)
	local session = event.origin;
	if session.secure and not session.compressed then
		event.features:tag("compression", { xmlns = xmlns_feature })
			:tag("method"):text("zlib"):up():up();
	end
end, 50);

local function failure(condition)
	return st.stanza("failure", { xmlns = xmlns_protocol }):tag(condition);
end

module:hook("stanza/" .. xmlns_protocol .. ":compress", function (event)
	local session, stanza = event.origin, event.stanza;
	if session.compressed or not session.secure then
		session.send(failure("setup-failed"));
		return true;
	end
	if stanza:get_child_text("method") ~= "zlib" then
		session.send(failure("unsupported-method"));
		return true;
	end
	local deflate, inflate = zlib.deflate(level), zlib.inflate();
	session.send(st.stanza("compressed", { xmlns = xmlns_protocol })); -- the last plain bytes
	add_filter(session, "bytes/out", function (data)
		return (deflate(data, "sync"));
	end, -1000); -- outgoing: compress last
	add_filter(session, "bytes/in", function (data)
		return (inflate(data));
	end, 1000);  -- incoming: inflate first
	session.compressed = true;
	session.log("info", "Stream compressed with zlib");
	session:reset_stream();
	return true;
end);
