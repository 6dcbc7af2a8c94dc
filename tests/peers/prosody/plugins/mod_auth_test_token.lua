-- mod_auth_test_token: test-only auth provider. Adds a token SASL mechanism (default
-- X-YANDEX-OAUTH: base64 of "login\0token"; "authzid\0login\0token" is accepted too) and,
-- optionally, PLAIN; both are checked against the config table test_tokens = { user = "secret" }.
local new_sasl = require "util.sasl".new;
local register_mechanism = require "util.sasl".registerMechanism;
local nodeprep = require "util.encodings".stringprep.nodeprep;

local tokens = module:get_option("test_tokens", {});
local mech_name = module:get_option_string("test_token_mechanism", "X-YANDEX-OAUTH");
local offer_plain = module:get_option_boolean("test_token_plain", true);

register_mechanism(mech_name, { "test_token" }, function (self, message)
	if not message or message == "" then return "failure", "malformed-request"; end
	local user, token = message:match("^([^%z]+)%z([^%z]+)$");
	if not user then
		user, token = message:match("^[^%z]*%z([^%z]+)%z([^%z]+)$");
	end
	user = user and nodeprep(user);
	if not user or not token then return "failure", "malformed-request", "Expected login\\0token"; end
	if self.profile.test_token(self, user, token) then
		self.username = user;
		return "success";
	end
	return "failure", "not-authorized", "Invalid token";
end);

local function check(username, secret)
	return tokens[username] ~= nil and tokens[username] == secret;
end

local provider = {};
function provider.test_password(username, password) return check(username, password); end
function provider.user_exists(username) return tokens[username] ~= nil; end
function provider.users() return pairs(tokens); end
function provider.set_password() return nil, "not supported"; end
function provider.create_user() return nil, "not supported"; end
function provider.delete_user() return nil, "not supported"; end
function provider.get_sasl_handler()
	local profile = {
		test_token = function (_, username, token) return check(username, token), true; end;
	};
	if offer_plain then
		profile.plain_test = function (_, username, password) return check(username, password), true; end;
	end
	return new_sasl(module.host, profile);
end
module:provides("auth", provider);
