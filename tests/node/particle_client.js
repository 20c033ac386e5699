// Drives stamp's simulated Particle Cloud with Particle's own JavaScript client,
// particle-api-js (pinned in package-lock.json), for tests/sim/test_particle_api_js.py.
//
//   node particle_client.js SCENARIO   with PARTICLE_API_URL, PARTICLE_ACCESS_TOKEN,
//                                      DEVICE (a name), PRODUCT, FIRMWARE (a .bin path)
//
// Prints one JSON object: what each call answered ({status, body} or {status, error}).
// Every wait is bounded; the script exits by itself.
'use strict';

const http = require('http');
const Particle = require('particle-api-js');

const env = process.env;
const WAIT_MS = 20000;

function agentCountingSockets() {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agent.sockets_made = 0;
    const create = agent.createConnection.bind(agent);
    agent.createConnection = (...args) => {
        agent.sockets_made += 1;
        return create(...args);
    };
    return agent;
}

async function outcome(promise) {
    try {
        const answer = await promise;
        return { status: answer.statusCode, body: answer.body };
    } catch (err) {
        return { status: err.statusCode, error: err.errorDescription, body: err.body };
    }
}

function collect(stream, until) {
    // Events as the client emits them, until `until(events)` holds or WAIT_MS passes.
    return new Promise((resolve) => {
        const events = [];
        const timer = setTimeout(() => resolve({ events, timedOut: true }), WAIT_MS);
        stream.on('event', (event) => {
            events.push(event);
            if (until(events)) {
                clearTimeout(timer);
                resolve({ events, timedOut: false });
            }
        });
    });
}

async function basics() {
    const agent = agentCountingSockets();
    const particle = new Particle({ baseUrl: env.PARTICLE_API_URL, httpAgent: agent });
    const auth = env.PARTICLE_ACCESS_TOKEN;
    const deviceId = env.DEVICE;
    const out = {};
    out.listDevices = await outcome(particle.listDevices({ auth }));
    out.getDevice = await outcome(particle.getDevice({ deviceId, auth }));
    out.getVariable = await outcome(particle.getVariable({ deviceId, name: 'stamp', auth }));
    out.unknownVariable = await outcome(particle.getVariable({ deviceId, name: 'nope', auth }));
    // An error answer to a request with a body, then a good request: one socket for both.
    out.callFunction = await outcome(
        particle.callFunction({ deviceId, name: 'led', argument: 'on', auth }));
    out.afterError = await outcome(particle.getDevice({ deviceId, auth }));
    out.socketsMade = agent.sockets_made;
    out.signalOn = await outcome(particle.signalDevice({ deviceId, signal: true, auth }));
    out.signalOff = await outcome(particle.signalDevice({ deviceId, signal: false, auth }));
    out.rename = await outcome(particle.renameDevice({ deviceId, name: 'renamed_photon', auth }));
    out.byNewName = await outcome(particle.getDevice({ deviceId: 'renamed_photon', auth }));
    out.noToken = await outcome(particle.listDevices({}));
    out.wrongToken = await outcome(particle.listDevices({ auth: 'f'.repeat(40) }));
    if (env.PRODUCT) {
        const product = env.PRODUCT;
        out.productPages = [];
        for (let page = 1; page <= 4; page += 1) {
            out.productPages.push(
                await outcome(particle.listDevices({ product, page, perPage: 2, auth })));
        }
        const first = out.productPages[0].body.devices[0].id;
        out.productDevice = await outcome(particle.getDevice({ deviceId: first, product, auth }));
    }
    agent.destroy();
    return out;
}

async function ota() {
    const particle = new Particle({ baseUrl: env.PARTICLE_API_URL });
    const auth = env.PARTICLE_ACCESS_TOKEN;
    const deviceId = env.DEVICE;
    const stream = await particle.getEventStream({ deviceId, auth });
    const events = collect(stream, (got) => got.some((e) => e.name === 'stamp'));
    // A file path: particle-api-js streams it as multipart without a Content-Length.
    const flash = await outcome(
        particle.flashDevice({ deviceId, files: { file: env.FIRMWARE }, auth }));
    const got = await events;
    stream.abort();
    return { flash, ...got };
}

async function publish() {
    const particle = new Particle({ baseUrl: env.PARTICLE_API_URL });
    const auth = env.PARTICLE_ACCESS_TOKEN;
    const stream = await particle.getEventStream({ deviceId: 'mine', name: 'test/', auth });
    const events = collect(stream, (got) => got.length >= 1);
    const published = await outcome(
        particle.publishEvent({ name: 'test/hello', data: 'from js', isPrivate: true, auth }));
    const got = await events;
    stream.abort();
    const unfiltered = await outcome(
        new Promise((resolve, reject) => {
            // /v1/events without a prefix: the real API refuses it (400).
            particle.getEventStream({ auth }).then(resolve, (err) => reject(err));
        }));
    return { published, ...got, unfiltered };
}

const scenarios = { basics, ota, publish };

async function main() {
    const scenario = scenarios[process.argv[2]];
    if (!scenario) {
        throw new Error(`unknown scenario ${process.argv[2]}`);
    }
    const result = await scenario();
    process.stdout.write(JSON.stringify(result) + '\n');
    process.exit(0);
}

main().catch((err) => {
    process.stderr.write(`${err && err.stack ? err.stack : JSON.stringify(err)}\n`);
    process.exit(1);
});
