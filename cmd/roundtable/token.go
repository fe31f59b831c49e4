package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

// runToken is `roundtable token`: it mints a join token with the server's
// API key and secret (flags or ROUNDTABLE_API_KEY / ROUNDTABLE_API_SECRET)
// and prints it.
func runToken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("roundtable token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("api-key", os.Getenv("ROUNDTABLE_API_KEY"), "API key (iss claim)")
	secret := fs.String("api-secret", os.Getenv("ROUNDTABLE_API_SECRET"), "API secret (prefer ROUNDTABLE_API_SECRET)")
	room := fs.String("room", "", "the room the token admits to (required); with -admin, \"*\" for every room")
	identity := fs.String("identity", "", "the participant's identity, the sub claim (required; with -admin, default \"admin\")")
	name := fs.String("name", "", "display name (default: the one the client sends)")
	ttl := fs.Duration("ttl", time.Hour, "validity")
	noPublish := fs.Bool("no-publish", false, "may not send audio or video")
	noSubscribe := fs.Bool("no-subscribe", false, "may not receive audio or video")
	noData := fs.Bool("no-data", false, "may not send data-channel messages")
	listed := fs.Bool("listed", false, "a WHEP viewer with this token is listed as a room member (default: not shown to the room; the operator sees it in the logs and metrics)")
	admin := fs.Bool("admin", false, "an admin API token (docs/api.md): admin grant only, for -room (default \"*\": every room)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *admin && *room == "" {
		*room = auth.AllRooms
	}
	if *admin && *identity == "" {
		*identity = "admin"
	}
	if *room == "" || *identity == "" {
		return errors.New("token: -room and -identity are required")
	}
	if *room == auth.AllRooms && !*admin {
		return errors.New(`token: -room "*" is for -admin tokens only`)
	}
	if len(*secret) < server.MinSecret {
		return fmt.Errorf("token: the API secret must be at least %d bytes (-api-secret or ROUNDTABLE_API_SECRET)", server.MinSecret)
	}
	grants := auth.Grants{Publish: !*noPublish, Subscribe: !*noSubscribe, PublishData: !*noData, Listed: *listed}
	if *admin { // an admin token administers; it does not join
		grants = auth.Grants{Admin: true}
	}
	tok, err := auth.Keys{Key: *key, Secret: *secret}.Mint(auth.Token{
		Room: *room, Identity: *identity, Name: *name, TTL: *ttl,
		Grants: grants,
	}, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
