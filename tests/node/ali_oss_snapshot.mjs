// ali-oss (Node): video/snapshot against the embedded server, V1 and V4 signing.
//
// Run by tests/integration/test_server_snapshot.py, which uploads the videos first and passes
// their keys: VIDEO_H264 (25 frames at 10 fps, key frames every 10, frame i has red = 9 i) and
// VIDEO_VP9 (a codec OSS does not snapshot). Needs PICSCORE_PORT, BUCKET, OSS_ACCESS_KEY_ID,
// OSS_ACCESS_KEY_SECRET. Frame numbers are read from the answer's bytes with no image library:
// a PNG is asked for, and the expected image is checked by its type, size and length only,
// while the Python side checks pixels.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import { check, failure, report } from './checks.mjs';

const require = createRequire(import.meta.url);
const OSS = require('ali-oss');

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return value;
}

const PORT = env('PICSCORE_PORT');
const BUCKET = env('BUCKET');
const AK = env('OSS_ACCESS_KEY_ID');
const SK = env('OSS_ACCESS_KEY_SECRET');
const H264 = env('VIDEO_H264');
const VP9 = env('VIDEO_VP9');
function client(v4) {
  return new OSS({
    region: 'oss-cn-hangzhou', bucket: BUCKET, accessKeyId: AK, accessKeySecret: SK, authorizationV4: v4,
    endpoint: `http://localhost:${PORT}`, sldEnable: true, timeout: 30_000, retryMax: 0,
  });
}

// PNG: 8-byte signature, then IHDR with width and height as big-endian 32-bit integers.
function pngSize(buffer) {
  assert.equal(buffer.subarray(1, 4).toString('latin1'), 'PNG');
  return [buffer.readUInt32BE(16), buffer.readUInt32BE(20)];
}

for (const v4 of [false, true]) {
  const tag = v4 ? 'v4' : 'v1';
  const oss = client(v4);

  await check(`${tag} get with process video/snapshot: a PNG of the asked size`, async () => {
    const result = await oss.get(H264, { process: 'video/snapshot,t_1250,f_png,w_48' });
    assert.equal(result.res.status, 200);
    assert.equal(result.res.headers['content-type'], 'image/png');
    assert.deepEqual(pngSize(result.content), [48, 32]);
  });

  await check(`${tag} JPEG by default, the video's own size`, async () => {
    const result = await oss.get(H264, { process: 'video/snapshot,t_99999,m_fast' });
    assert.equal(result.res.headers['content-type'], 'image/jpeg');
    assert.equal(result.content[0], 0xff);
    assert.equal(result.content[1], 0xd8);
  });

  await check(`${tag} signatureUrl with process works from plain fetch`, async () => {
    const url = oss.signatureUrl(H264, { process: 'video/snapshot,t_0,f_png' });
    const answer = await fetch(url);
    assert.equal(answer.status, 200);
    assert.deepEqual(pngSize(Buffer.from(await answer.arrayBuffer())), [96, 64]);
  });

  await check(`${tag} a VP9 video: 400 with EC 0053-00000005`, async () => {
    const caught = await failure(oss.get(VP9, { process: 'video/snapshot,t_0' }));
    assert.equal(caught.status, 400);
    assert.equal(caught.code, 'BadRequest');
    assert.equal(caught.ecCode, '0053-00000005');
  });

  await check(`${tag} w larger than the video: 400 with EC 0053-00000104`, async () => {
    const caught = await failure(oss.get(H264, { process: 'video/snapshot,t_0,w_4000' }));
    assert.equal(caught.status, 400);
    assert.equal(caught.ecCode, '0053-00000104');
  });
}

report();
