// ali-oss (Node): CopyObject, object tagging and storage classes against the embedded server.
//
// Run by tests/integration/test_server_copy_tagging.py against a live `picscore serve`, or by hand:
//
//   PICSCORE_PORT=9000 BUCKET=testbucket OSS_ACCESS_KEY_ID=... OSS_ACCESS_KEY_SECRET=... \
//   node tests/node/ali_oss_copy_tagging.mjs
//
// Optional: PICSCORE_JPEG (default fixtures/photo.jpg), PICSCORE_RUN_PREFIX (the unique key
// prefix of this run). Everything the run writes is deleted again except
// `<prefix>/keep/图片/copied 猫.jpg` (a copy of the JPEG), left for the Python wrapper to check on
// disk. Both signing versions run, on `localhost` with `sldEnable` (path style); each case's
// expectations are computed here (MD5 of the bytes, the tags sent).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { check, report } from './checks.mjs';

const require = createRequire(import.meta.url);
const OSS = require('ali-oss');

const HERE = dirname(fileURLToPath(import.meta.url));

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return value;
}

const PORT = env('PICSCORE_PORT');
const BUCKET = env('BUCKET', 'testbucket');
const AK = env('OSS_ACCESS_KEY_ID');
const SK = env('OSS_ACCESS_KEY_SECRET');
const JPEG = readFileSync(env('PICSCORE_JPEG', join(HERE, 'fixtures', 'photo.jpg')));
const RUN = env('PICSCORE_RUN_PREFIX', `node-ct-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`);
const KEEP_KEY = `${RUN}/keep/图片/copied 猫.jpg`;

function makeClient(v4) {
  return new OSS({
    region: 'oss-cn-hangzhou',
    bucket: BUCKET,
    accessKeyId: AK,
    accessKeySecret: SK,
    authorizationV4: v4,
    endpoint: `http://localhost:${PORT}`,
    sldEnable: true,
    timeout: 30_000,
    retryMax: 0,
  });
}

const md5 = buffer => `"${createHash('md5').update(buffer).digest('hex').toUpperCase()}"`;
const header = (res, name) => res.headers[name.toLowerCase()];

async function expectOssError(promise, { name, status }, where) {
  let caught = null;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `${where}: expected ${name}, but the request succeeded`);
  assert.equal(caught.name, name, `${where}: err.name (${caught.code} ${caught.status} ${caught.message})`);
  assert.equal(caught.status, status, `${where}: err.status`);
  return caught;
}

async function suite(v4) {
  const tag = v4 ? 'v4' : 'v1';
  const client = makeClient(v4);
  const base = `${RUN}/${tag}`;
  const src = `${base}/src/图片/cat photo+1.jpg`;

  await check(`${tag} put with x-oss-tagging + meta; head counts the tags`, async () => {
    await client.put(src, JPEG, { meta: { camera: 'X100' }, headers: { 'x-oss-tagging': 'k1=v1&k%202=a%2Fb' } });
    const head = await client.head(src);
    assert.equal(header(head.res, 'x-oss-tagging-count'), '2');
    assert.equal(header(head.res, 'x-oss-storage-class'), 'Standard');
    assert.deepEqual((await client.getObjectTagging(src)).tag, { k1: 'v1', 'k 2': 'a/b' });
  });

  await check(`${tag} copy: same bytes, ETag, meta and tags (COPY directives)`, async () => {
    const dst = `${base}/dst/copy.jpg`;
    const copied = await client.copy(dst, src);
    assert.equal(copied.res.status, 200);
    assert.equal(copied.data.etag, md5(JPEG));
    assert.ok(copied.data.lastModified, 'CopyObjectResult has LastModified');
    assert.ok((await client.get(dst)).content.equals(JPEG));
    const head = await client.head(dst);
    assert.equal(header(head.res, 'etag'), md5(JPEG));
    assert.deepEqual(head.meta, { camera: 'X100' });
    assert.deepEqual((await client.getObjectTagging(dst)).tag, { k1: 'v1', 'k 2': 'a/b' });
  });

  await check(`${tag} copy guards: wrong If-Match -> 412, destination untouched; If-None-Match -> 304`, async () => {
    const dst = `${base}/dst/guarded.jpg`;
    await client.put(dst, Buffer.from('old'));
    await expectOssError(client.copy(dst, src, { headers: { 'If-Match': md5(Buffer.from('nope')) } }),
      { name: 'PreconditionFailedError', status: 412 }, 'if-match');
    assert.equal((await client.get(dst)).content.toString(), 'old');
    const notModified = await client.copy(dst, src, { headers: { 'If-None-Match': md5(JPEG) } });
    assert.equal(notModified.res.status, 304);
    assert.equal((await client.get(dst)).content.toString(), 'old');
    await client.copy(dst, src, { headers: { 'If-Match': md5(JPEG) } });
    assert.ok((await client.get(dst)).content.equals(JPEG));
  });

  await check(`${tag} copy REPLACE: meta and tags from the request`, async () => {
    const dst = `${base}/dst/replaced.jpg`;
    await client.copy(dst, src, {
      meta: { owner: 'node' },
      headers: { 'x-oss-tagging-directive': 'Replace', 'x-oss-tagging': 'new=1' },
    });
    assert.deepEqual((await client.head(dst)).meta, { owner: 'node' });
    assert.deepEqual((await client.getObjectTagging(dst)).tag, { new: '1' });
  });

  await check(`${tag} copy errors: missing source 404, bad directive 400`, async () => {
    await expectOssError(client.copy(`${base}/dst/x.jpg`, `${base}/missing.jpg`), { name: 'NoSuchKeyError', status: 404 }, 'missing');
    await expectOssError(client.copy(`${base}/dst/x.jpg`, src, { headers: { 'x-oss-metadata-directive': 'MERGE' } }),
      { name: 'InvalidArgumentError', status: 400 }, 'directive');
    await expectOssError(client.head(`${base}/dst/x.jpg`), { name: 'NoSuchKeyError', status: 404 }, 'nothing written');
  });

  await check(`${tag} putObjectTagging / getObjectTagging / deleteObjectTagging`, async () => {
    const key = `${base}/tags.txt`;
    await client.put(key, Buffer.from('t'));
    const tags = { project: 'picscore', Case: 'Upper', case: 'lower', 'a b': 'c/d' };
    assert.equal((await client.putObjectTagging(key, tags)).status, 200);
    assert.deepEqual((await client.getObjectTagging(key)).tag, tags);
    assert.equal(header((await client.head(key)).res, 'x-oss-tagging-count'), '4');
    assert.equal((await client.deleteObjectTagging(key)).status, 204);
    assert.deepEqual((await client.getObjectTagging(key)).tag, {});
    assert.equal(header((await client.head(key)).res, 'x-oss-tagging-count'), undefined);
  });

  await check(`${tag} 11 tags in x-oss-tagging -> 400 BadRequest, nothing written`, async () => {
    const key = `${base}/eleven.txt`;
    const eleven = Array.from({ length: 11 }, (_, i) => `k${i}=v`).join('&');
    await expectOssError(client.put(key, Buffer.from('x'), { headers: { 'x-oss-tagging': eleven } }),
      { name: 'BadRequestError', status: 400 }, 'eleven');
    await expectOssError(client.head(key), { name: 'NoSuchKeyError', status: 404 }, 'nothing written');
  });

  await check(`${tag} storage classes: head, listV2, self-copy to IA`, async () => {
    const key = `${base}/classes/ia.jpg`;
    await client.put(key, JPEG);
    await client.copy(key, key, { headers: { 'x-oss-storage-class': 'IA' } });
    assert.equal(header((await client.head(key)).res, 'x-oss-storage-class'), 'IA');
    assert.ok((await client.get(key)).content.equals(JPEG), 'IA is readable');
    await client.put(`${base}/classes/cold.jpg`, JPEG, { headers: { 'x-oss-storage-class': 'ColdArchive' } });
    const listed = await client.listV2({ prefix: `${base}/classes/`, 'max-keys': 10 });
    assert.deepEqual(listed.objects.map(o => [o.name, o.storageClass]),
      [[`${base}/classes/cold.jpg`, 'ColdArchive'], [key, 'IA']]);
  });

  await check(`${tag} Archive: get, image/score and copy -> 403 InvalidObjectState; head works`, async () => {
    const key = `${base}/classes/archive.jpg`;
    await client.put(key, JPEG, { headers: { 'x-oss-storage-class': 'Archive' } });
    const want = { name: 'InvalidObjectStateError', status: 403 };
    const err = await expectOssError(client.get(key), want, 'get');
    assert.equal(err.message.split('\n')[0].includes("The operation is not valid for the object's state"), true, err.message);
    await expectOssError(client.get(key, { process: 'image/score' }), want, 'image/score');
    await expectOssError(client.copy(`${base}/classes/from-archive.jpg`, key), want, 'copy');
    const head = await client.head(key);
    assert.equal(header(head.res, 'x-oss-storage-class'), 'Archive');
    assert.equal(Number(header(head.res, 'content-length')), JPEG.length);
  });

  await check(`${tag} cleanup`, async () => {
    const listed = await client.listV2({ prefix: `${base}/`, 'max-keys': 100 });
    await client.deleteMulti(listed.objects.map(o => o.name), { quiet: true });
    assert.deepEqual((await client.listV2({ prefix: `${base}/`, 'max-keys': 100 })).objects, []);
  });
}

async function main() {
  for (const v4 of [false, true]) await suite(v4);
  await check('keep: a copy (cross-prefix, non-ASCII key) for the wrapper', async () => {
    const client = makeClient(true);
    const src = `${RUN}/tmp/源.jpg`;
    await client.put(src, JPEG);
    await client.copy(KEEP_KEY, src);
    await client.delete(src);
    assert.ok((await client.get(KEEP_KEY)).content.equals(JPEG));
  });
  report();
}

main().catch(err => {
  console.error(err?.stack ?? err);
  process.exitCode = 1;
});
