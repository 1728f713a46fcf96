// Evaluates flags through OpenFeature's OFREP provider against a ladle
// server and prints one JSON object: {KEY: {value, variant, reason, errorCode}}.
// Usage: node evaluate.js BASE_URL TOKEN TARGETING_KEY KEY:TYPE...
//   TYPE is boolean, string, number or object (the caller's default value:
//   false, "DEFAULT", -1, {"default": true}). The modules are in node_modules/ next to this
//   file (scripts/install-deps.sh --test installs them).
const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');

async function main() {
  const [baseUrl, token, targetingKey, ...flags] = process.argv.slice(2);
  const provider = new OFREPProvider({
    baseUrl,
    headers: [['Authorization', `Bearer ${token}`]],
  });
  await OpenFeature.setProviderAndWait(provider);
  const client = OpenFeature.getClient();
  const out = {};
  for (const spec of flags) {
    const [key, type] = spec.split(':');
    const context = { targetingKey };
    const details = type === 'string' ? await client.getStringDetails(key, 'DEFAULT', context)
      : type === 'number' ? await client.getNumberDetails(key, -1, context)
      : type === 'object' ? await client.getObjectDetails(key, { default: true }, context)
      : await client.getBooleanDetails(key, false, context);
    out[key] = {
      value: details.value,
      variant: details.variant ?? null,
      reason: details.reason ?? null,
      errorCode: details.errorCode ?? null,
    };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  await OpenFeature.close();
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
