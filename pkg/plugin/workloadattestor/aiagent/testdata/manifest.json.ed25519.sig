{"apiVersion":"agentid.dev/v1","keyId":"release-ed25519","signature":"5aUbOlTtuM9PAeg2dARzvdkRKJpXO+Tiop3n2DKYaWdNxu/NkXbkP8Qn7QlX5KL6Tnyle+vC2ZGLoGtFbax+Cg=="}
