package hubclient

// PaceBurst is paceBurst for the package's external tests: how many requests of a class of
// rate tokens/s a paced client sends before it waits (at most paceBurstRequests).
var PaceBurst = paceBurst
