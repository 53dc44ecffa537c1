// The tiny test harness the ali-oss scripts share: named checks that keep going after a
// failure, a FAIL line with the error's OSS fields, and a closing "N passed, M failed" line
// that the Python wrappers assert on.

export const results = { passed: 0, failed: [] };

export async function check(name, fn) {
  try {
    await fn();
    results.passed += 1;
    console.log(`ok      ${name}`);
  } catch (err) {
    results.failed.push(name);
    const extra = ['name', 'code', 'status', 'ecCode'].filter(f => err?.[f] !== undefined)
      .map(f => `${f}=${JSON.stringify(err[f])}`).join(' ');
    console.log(`FAIL    ${name}\n        ${String(err?.stack ?? err).split('\n').join('\n        ')}\n        ${extra}`);
  }
}

export function report() {
  console.log(`\n${results.passed} passed, ${results.failed.length} failed`);
  if (results.failed.length) console.log(`FAILED:\n  ${results.failed.join('\n  ')}`);
  process.exitCode = results.failed.length ? 1 : 0;
}

// The OSS error a request fails with, or an assertion failure if it succeeds.
export async function failure(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected an OSS error, but the request succeeded');
}
