package apikey_test

import (
	"fmt"

	"github.com/moat-dev/moat/internal/apikey"
)

// A client signs a private call the way Kraken documents it.
func ExampleSign() {
	secret, _ := apikey.DecodeSecret("kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==")
	body := "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
	fmt.Println(apikey.Sign("/0/private/AddOrder", "1616492376594", []byte(body), secret))
	// Output: 4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==
}

// Routes say which permission a method needs.
func ExampleRoutes() {
	routes := apikey.DefaultRoutes()
	r, _ := routes.Lookup("QueryOrders")
	key := apikey.PermissionsOf(apikey.QueryClosedOrders)
	fmt.Println(apikey.FormatRequirement(r.Need), r.Allows(key))
	// Output: query-open-orders|query-closed-orders true
}
