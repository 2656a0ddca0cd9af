// The camera, for reading a sign-in request's QR code inside the app: the
// browser's own BarcodeDetector where it has one (Chrome on Android), else
// jsQR (js/vendor, loaded only then) on each new video frame. Frames are
// taken as the camera delivers them (requestVideoFrameCallback), not on a
// timer.

let decoder = null;

/** Starts loading the decoder the scanner will use, if the browser has
 *  none of its own: called once the app is up, so the camera works later
 *  even when the relay that serves the app can no longer be reached (and
 *  no service worker keeps a copy). */
export function prepare() {
  decoder ??= (async () => {
    if ("BarcodeDetector" in self) {
      const formats = await BarcodeDetector.getSupportedFormats().catch(() => []);
      if (formats.includes("qr_code")) return { native: new BarcodeDetector({ formats: ["qr_code"] }) };
    }
    const { default: jsQR } = await import("./vendor/jsqr.js");
    return { jsQR };
  })();
  // A failed load is tried again at the next call.
  decoder.catch(() => {
    decoder = null;
  });
  return decoder;
}

/** A function from a video frame to the QR code's text, or null. */
async function detector() {
  let found;
  try {
    found = await prepare();
  } catch {
    throw new Error("The QR code reader could not be loaded (no network, and no copy on this phone): paste the request instead.");
  }
  if (found.native) return async (video) => (await found.native.detect(video))[0]?.rawValue ?? null;
  const { jsQR } = found;
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  return async (video) => {
    const { videoWidth: w, videoHeight: h } = video;
    if (!w || !h) return null;
    canvas.width = w;
    canvas.height = h;
    ctx.drawImage(video, 0, 0, w, h);
    // Both ways: a terminal with a light background shows the code inverted.
    const found = jsQR(ctx.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "attemptBoth" });
    return found?.data || null;
  };
}

/** Starts the back camera into `video` and calls `onText` once with the
 *  first QR code seen. Returns { stop }. Throws an Error that says what to
 *  do when there is no camera or it was not allowed. */
export async function start(video, onText) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("This browser cannot use the camera here: paste the request instead.");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch {
    throw new Error("The camera is not available or was not allowed: paste the request instead.");
  }
  let detect;
  try {
    detect = await detector();
  } catch (e) {
    for (const t of stream.getTracks()) t.stop();
    throw e;
  }
  let stopped = false;
  const stop = () => {
    stopped = true;
    for (const t of stream.getTracks()) t.stop();
    video.srcObject = null;
  };
  video.srcObject = stream;
  await video.play().catch(() => undefined);
  const next = (f) => (video.requestVideoFrameCallback ? video.requestVideoFrameCallback(f) : requestAnimationFrame(f));
  const frame = async () => {
    if (stopped) return;
    const text = await detect(video).catch(() => null);
    if (stopped) return;
    if (text) {
      stop();
      onText(text);
      return;
    }
    next(frame);
  };
  next(frame);
  return { stop };
}
