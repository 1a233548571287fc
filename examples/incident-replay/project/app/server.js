// The application the agent was asked to deploy to staging.
const http = require("http");
http.createServer((req, res) => res.end("ok\n")).listen(process.env.PORT || 3000);
