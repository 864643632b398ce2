// The player page: join the session service's queue, show the place and the expected wait, then play the
// stream the service assigned, through Epic's frontend library. Nothing here chooses a stream: the page knows
// only its own session (an HttpOnly cookie) and the service's relative paths, and the library is told to
// ignore the page's URL parameters (useUrlParams: false), so `?ss=`, `?StreamerId=` and the like do nothing.
// The library must speak the signalling of the player's build: a session of a build of another Unreal Engine
// version reloads the page, which the service then serves with that version's library.
import { Config, PixelStreaming } from '@pixelstream/frontend';

// The Unreal Engine version of this bundle's library (build.mjs defines it per bundle).
const UNREAL_VERSION = __UNREAL_VERSION__;
const RELOADS = 'pixelstream-reloads';
document.body.dataset.library = UNREAL_VERSION;

const POLL_MS = 2000;
// How long the page keeps asking while the service does not answer (an update or a drain of the service: the
// ingress answers 502 or 503, or nothing answers); the service keeps the session meanwhile (its state).
const SERVICE_AWAY_MS = 90000;
const statusLine = document.getElementById('status');
const actionButton = document.getElementById('action');
const videoParent = document.getElementById('video');
const sessionUrl = new URL('api/session', document.baseURI);
const statusUrl = new URL('api/status', document.baseURI);
const ENDED = {
  'stream-ended': 'The stream ended.',
  'claim-expired': 'Your turn passed before the stream connected.',
  disconnected: 'You were disconnected for too long.',
  'time-limit': 'Your session reached its time limit.',
  'left-queue': 'You left the queue (the page stopped asking for your place).',
  left: 'You left.'
};
let stream = null;

function show(state, text, data = {}) {
  document.body.dataset.state = state;
  for (const [key, value] of Object.entries(data)) document.body.dataset[key] = String(value);
  statusLine.textContent = text;
}

function offer(label, action) {
  actionButton.textContent = label;
  actionButton.hidden = false;
  actionButton.onclick = () => {
    actionButton.hidden = true;
    action();
  };
}

function roughly(seconds) {
  if (seconds < 60) return 'less than a minute';
  const minutes = Math.round(seconds / 60);
  return minutes === 1 ? 'about a minute' : `about ${minutes} minutes`;
}

// A signed launch link carries its token in the URL fragment (never sent to a server or written to a log);
// it is taken once and removed from the address bar.
function takeLaunchToken() {
  const token = new URLSearchParams(location.hash.slice(1)).get('launch');
  if (token) history.replaceState(null, '', location.pathname + location.search);
  return token;
}

async function call(method, body) {
  const init = { method, credentials: 'same-origin', cache: 'no-store' };
  if (body) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(method === 'GET' ? statusUrl : sessionUrl, init);
  } catch {
    return { ok: false, status: 0, data: {} };
  }
  let data = {};
  try {
    data = await response.json();
  } catch {
    data = {};
  }
  return { ok: response.ok, status: response.status, data };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A request of `method` (the status, or a join); while the service is away (no answer, or a 5xx that is not the
// service's own JSON answer, such as the ingress's 502 or 503 while the pod is replaced), made again every
// POLL_MS and a random part of it (so that the pages of every player do not ask in step) until it is back or
// SERVICE_AWAY_MS have passed. Any answer of the service's own is taken as it is.
async function untilAnswered(method, body) {
  const giveUp = Date.now() + SERVICE_AWAY_MS;
  for (;;) {
    const result = await call(method, body);
    const away = result.status === 0 || (result.status >= 500 && !result.data.error);
    if (!away) return result;
    if (Date.now() >= giveUp) return { ok: false, status: result.status, data: { error: 'The service did not come back.' } };
    show('service-away', 'The service is restarting. Keeping your place…');
    await sleep(POLL_MS + Math.random() * POLL_MS);
  }
}

async function join() {
  show('joining', 'Joining…');
  const token = takeLaunchToken();
  const { ok, data } = await untilAnswered('POST', token ? { launch: token } : {});
  if (!ok) {
    show('refused', data.error || 'You could not join.');
    offer('Try again', join);
    return;
  }
  follow(data);
}

// Loads the page with the library of the session's build: the version rides in the URL (?ue=), not on the
// session's cookie, which a browser may withhold from a reload after the player came from another site
// (SameSite=Strict). At most twice in a row: a service that keeps serving another version must not loop the page.
function reloadFor(version) {
  const reloads = Number(sessionStorage.getItem(RELOADS) || 0);
  if (reloads >= 2) {
    sessionStorage.removeItem(RELOADS);
    show('refused', `This page cannot play a stream of Unreal Engine ${version}.`);
    offer('Reload', () => location.reload());
    return;
  }
  sessionStorage.setItem(RELOADS, String(reloads + 1));
  location.replace(new URL(`?ue=${encodeURIComponent(version)}`, document.baseURI).href);
}

async function follow(session) {
  for (;;) {
    if (session.unrealVersion && session.unrealVersion !== UNREAL_VERSION) {
      reloadFor(session.unrealVersion);
      return;
    }
    if (session.unrealVersion) sessionStorage.removeItem(RELOADS);
    if (session.state === 'queued') {
      show('queued', `You are number ${session.position} in the queue. Wait: ${roughly(session.estimatedWaitSeconds)}.`, {
        position: session.position,
        wait: session.estimatedWaitSeconds
      });
    } else if (session.state === 'ended') {
      show('ended', ENDED[session.reason] || 'Your session ended.', { reason: session.reason || '' });
      offer('Play again', join);
      return;
    } else {
      connect();
      return;
    }
    await sleep(POLL_MS);
    const { ok, data } = await untilAnswered('GET');
    if (!ok) {
      show('ended', data.error || 'Your session ended.');
      offer('Play again', join);
      return;
    }
    session = data;
  }
}

function connect() {
  show('connecting', 'Your stream is ready. Connecting…');
  const signalling = new URL('ws', document.baseURI);
  signalling.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const config = new Config({
    useUrlParams: false,
    initialSettings: {
      ss: signalling.href,
      AutoConnect: true,
      AutoPlayVideo: true,
      StartVideoMuted: true,
      MaxReconnectAttempts: 0,
      WaitForStreamer: false
    }
  });
  videoParent.replaceChildren();
  const current = new PixelStreaming(config, { videoElementParent: videoParent });
  stream = current;
  current.addEventListener('webRtcConnected', () => show('connected', 'Connected.'));
  current.addEventListener('playStream', () => show('playing', 'Playing.'));
  current.addEventListener('playStreamRejected', () => offer('Play', () => current.play()));
  current.addEventListener('webRtcDisconnected', async () => {
    if (stream !== current) return;
    stream = null;
    show('disconnected', 'Disconnected.');
    await sleep(1000);
    const { ok, data } = await untilAnswered('GET');
    if (ok) follow(data);
    else {
      show('ended', data.error || 'Your session ended.');
      offer('Play again', join);
    }
  });
}

// A page opened again (or reloaded for its build) picks up its session; a launch link or no session joins.
async function start() {
  if (!new URLSearchParams(location.hash.slice(1)).has('launch')) {
    const { ok, data } = await untilAnswered('GET');
    if (ok && data.state !== 'ended') {
      follow(data);
      return;
    }
  }
  join();
}

start();
