// Uploads a file with a stock tus-js-client, as a Node.js app would; run
// by internal/media's tests.
//
//   node upload.js <endpoint> <file> <chunkSize> <"Header: value"> [abortAtBytes]
//
// The header authenticates the test user. The upload's URL is remembered
// in <file>.tus.json (tus-js-client's FileUrlStorage), so a later run for
// the same file resumes it through findPreviousUploads(). With
// abortAtBytes, the upload is aborted (upload.abort(), mid-request) once
// that many bytes were sent. Prints one JSON line:
// {"status": "success" | "aborted" | "error", "url", "resumed", ...}.
'use strict'

const fs = require('fs')
const path = require('path')
const tus = require('tus-js-client')

const [endpoint, file, chunkArg, header, abortArg] = process.argv.slice(2)
if (!endpoint || !file || !chunkArg || !header || !header.includes(':')) {
  console.error('usage: node upload.js <endpoint> <file> <chunkSize> <"Header: value"> [abortAtBytes]')
  process.exit(2)
}
const chunkSize = Number(chunkArg)
const abortAt = abortArg ? Number(abortArg) : 0
const colon = header.indexOf(':')
const headers = { [header.slice(0, colon).trim()]: header.slice(colon + 1).trim() }
const storePath = `${file}.tus.json`
if (!fs.existsSync(storePath)) {
  fs.writeFileSync(storePath, '{}')
}

function finish(result, code) {
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(code)
}

async function main() {
  let resumed = false
  let aborting = false
  const upload = new tus.Upload(fs.createReadStream(file), {
    endpoint,
    chunkSize,
    headers,
    metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
    urlStorage: new tus.FileUrlStorage(storePath),
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    retryDelays: [0, 250, 1000],
    onProgress(bytesSent) {
      if (abortAt > 0 && !aborting && bytesSent >= abortAt) {
        aborting = true
        upload.abort().then(
          () => finish({ status: 'aborted', url: upload.url, sent: bytesSent, resumed }, 0),
          (err) => finish({ status: 'error', error: String(err) }, 1),
        )
      }
    },
    onSuccess() {
      if (!aborting) {
        finish({ status: 'success', url: upload.url, resumed }, 0)
      }
    },
    onError(err) {
      finish({ status: 'error', error: String(err), url: upload.url }, 1)
    },
  })
  const previous = await upload.findPreviousUploads()
  if (previous.length > 0) {
    upload.resumeFromPreviousUpload(previous[0])
    resumed = true
  }
  upload.start()
}

main().catch((err) => finish({ status: 'error', error: String(err) }, 1))
