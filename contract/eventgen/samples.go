package eventgen

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

var (
	currencies = []string{"EUR", "EUR", "USD", "USD", "USD", "GBP"}
	countries  = []string{"DE", "FR", "US", "US", "GB", "NL", "ES", "IT", "CA"}
	platforms  = []string{"PLATFORM_IOS", "PLATFORM_IOS", "PLATFORM_ANDROID", "PLATFORM_WEB", "PLATFORM_TV"}
	referrers  = []string{"push:show_reminder", "https://www.instagram.com/", "search", "email:weekly_digest", "deeplink:share"}
	products   = []struct{ sku, title string }{
		{"WATCH-SUB-116610", "Rolex Submariner Date 116610LN"},
		{"TCG-PKM-BS1-BOOSTER", "Pokémon Base Set booster pack (1999)"},
		{"SNK-AJ1-CHI-10", "Air Jordan 1 Retro High OG \"Chicago\" US 10"},
		{"CARD-MTG-LOTUS-UNL", "Black Lotus, Unlimited, PSA 7"},
		{"BAG-HER-BIRKIN30", "Hermès Birkin 30 Togo Gold"},
		{"COIN-AU-KRUG-1OZ", "Krugerrand 1 oz gold coin"},
		{"VINYL-BEA-ABBEY-UK1", "The Beatles – Abbey Road, UK 1st press"},
		{"LEGO-75192", "LEGO Star Wars 75192 Millennium Falcon, sealed"},
	}
	walletNames = []string{"Apple Pay", "Google Pay", "PayPal"}
	cardBrands  = []string{"visa", "mastercard", "amex"}
)

func (g *Generator) fillViewStarted(m protoreflect.Message) {
	i := g.rng.IntN(len(g.shows))
	setString(m, "event_id", g.uuid())
	setTime(m, "occurred_at", g.tick())
	setString(m, "stream_id", g.streams[i])
	setString(m, "show_id", g.shows[i])
	if g.rng.IntN(5) == 0 {
		set(m, "anonymous", protoreflect.ValueOfBool(true))
	} else {
		setString(m, "viewer_id", g.pick(g.users))
	}
	c := sub(m, "client")
	setEnum(c, "platform", g.pick(platforms))
	setString(c, "app_version", fmt.Sprintf("4.%d.%d", 10+g.rng.IntN(8), g.rng.IntN(20)))
	setString(c, "country", g.pick(countries))
	set(c, "utc_offset_minutes", protoreflect.ValueOfInt32(int32(60*(g.rng.IntN(15)-6))))
	setDuration(m, "startup_latency", time.Duration(300+g.rng.IntN(2500))*time.Millisecond)
	set(m, "playback_position_ms", protoreflect.ValueOfUint64(uint64(g.rng.IntN(3*3600_000))))
	set(m, "initial_bitrate_kbps", protoreflect.ValueOfUint32(uint32(800+g.rng.IntN(7200))))
	set(m, "dropped_frame_ratio", protoreflect.ValueOfFloat32(float32(g.rng.IntN(50))/1000))
	set(m, "is_first_view", protoreflect.ValueOfBool(g.rng.IntN(4) == 0))
	if g.rng.IntN(2) == 0 {
		setWrapper(m, "referrer", protoreflect.ValueOfString(g.pick(referrers)))
	}
	exp := m.Mutable(field(m, "experiments")).Map()
	exp.Set(protoreflect.ValueOfString("player_abr").MapKey(), protoreflect.ValueOfString([]string{"control", "bola"}[g.rng.IntN(2)]))
	if g.rng.IntN(3) == 0 {
		exp.Set(protoreflect.ValueOfString("chat_overlay").MapKey(), protoreflect.ValueOfString("v2"))
	}
	trace := make([]byte, 16)
	for j := range trace {
		trace[j] = byte(g.rng.Uint32())
	}
	set(m, "trace_id", protoreflect.ValueOfBytes(trace))
}

func (g *Generator) fillBidPlaced(m protoreflect.Message) {
	i := g.rng.IntN(len(g.auctions))
	auction := g.auctions[i]
	g.bidSeq[auction]++
	bidder := g.pick(g.users)
	currency := currencies[i%len(currencies)] // one currency per auction
	// 5.00 to 2004.99, cents included (one random draw, as before cents were added, so
	// seeded output elsewhere keeps its sequence).
	cents := int64(500 + g.rng.IntN(200_000))
	setString(m, "event_id", g.uuid())
	setTime(m, "occurred_at", g.tick())
	setString(m, "auction_id", auction)
	setString(m, "lot_id", g.lots[i])
	setString(m, "bidder_id", bidder)
	setString(m, "bidder_email", fmt.Sprintf("bidder.%s@example.com", bidder[:8]))
	setMoney(m, "amount", currency, cents)
	if g.rng.IntN(4) == 0 {
		setEnum(m, "source", "SOURCE_AUTO_BID")
		setMoney(m, "max_auto_bid", currency, cents+int64(100*g.rng.IntN(500)))
	} else {
		setEnum(m, "source", []string{"SOURCE_LIVE_BUTTON", "SOURCE_LIVE_BUTTON", "SOURCE_API"}[g.rng.IntN(3)])
	}
	set(m, "sequence", protoreflect.ValueOfUint64(g.bidSeq[auction]))
	set(m, "quantity", protoreflect.ValueOfInt32(int32(1+g.rng.IntN(2))))
	setDuration(m, "time_remaining", time.Duration(g.rng.IntN(30_000))*time.Millisecond)
	set(m, "client_clock_skew_ms", protoreflect.ValueOfInt64(int64(g.rng.IntN(400)-200)))
	if g.rng.IntN(10) == 0 {
		setWrapper(m, "promo_code", protoreflect.ValueOfString("LIVE10"))
	}
}

func (g *Generator) fillOrderPaid(m protoreflect.Message) {
	currency := g.pick(currencies)
	setString(m, "event_id", g.uuid())
	setTime(m, "occurred_at", g.tick())
	setString(m, "order_id", g.uuid())
	setString(m, "buyer_id", g.pick(g.users))
	setString(m, "seller_id", g.pick(g.sellers))
	items := m.Mutable(field(m, "items")).List()
	var subtotal int64
	for range 1 + g.rng.IntN(3) {
		p := products[g.rng.IntN(len(products))]
		it := items.NewElement()
		li := it.Message()
		qty := 1 + g.rng.IntN(2)
		price := int64(100*(10+g.rng.IntN(900)) + 99)
		subtotal += int64(qty) * price
		setString(li, "listing_id", g.pick(g.listings))
		setString(li, "sku", p.sku)
		setString(li, "title", p.title)
		set(li, "quantity", protoreflect.ValueOfUint32(uint32(qty)))
		setMoney(li, "unit_price", currency, price)
		if g.rng.IntN(2) == 0 {
			setWrapper(li, "auction_id", protoreflect.ValueOfString(g.pick(g.auctions)))
		}
		items.Append(it)
	}
	shipping := int64(100 * (5 + g.rng.IntN(20)))
	tax := subtotal / 5
	setMoney(m, "subtotal", currency, subtotal)
	setMoney(m, "shipping", currency, shipping)
	setMoney(m, "tax", currency, tax)
	setMoney(m, "total", currency, subtotal+shipping+tax)

	pay := sub(m, "payment")
	setString(pay, "provider", []string{"adyen", "stripe"}[g.rng.IntN(2)])
	setString(pay, "provider_reference", "psp_"+g.uuid()[:18])
	switch g.rng.IntN(5) {
	case 0, 1, 2:
		setEnum(pay, "method", "METHOD_CARD")
		card := sub(pay, "card")
		setString(card, "brand", g.pick(cardBrands))
		setString(card, "last4", fmt.Sprintf("%04d", g.rng.IntN(10000)))
		set(card, "expiry_month", protoreflect.ValueOfUint32(uint32(1+g.rng.IntN(12))))
		set(card, "expiry_year", protoreflect.ValueOfInt32(int32(2026+g.rng.IntN(6))))
	case 3:
		setEnum(pay, "method", "METHOD_WALLET")
		setString(sub(pay, "wallet"), "name", g.pick(walletNames))
	default:
		setEnum(pay, "method", "METHOD_BANK_TRANSFER")
		setString(sub(pay, "bank_transfer"), "bank_country", g.pick(countries))
	}
	setString(m, "shipping_country", g.pick(countries))
	set(m, "fx_rate_to_usd", protoreflect.ValueOfFloat64(map[string]float64{"EUR": 1.0834, "USD": 1, "GBP": 1.2712}[currency]))
	set(m, "is_gift", protoreflect.ValueOfBool(g.rng.IntN(10) == 0))
	if g.rng.IntN(4) == 0 {
		m.Mutable(field(m, "coupon_codes")).List().Append(protoreflect.ValueOfString("WELCOME5"))
	}
	attrs := m.Mutable(field(m, "attributes")).Map()
	attrs.Set(protoreflect.ValueOfString("channel").MapKey(), protoreflect.ValueOfString([]string{"live_show", "buy_now", "offer"}[g.rng.IntN(3)]))
	setDuration(m, "checkout_duration", time.Duration(5+g.rng.IntN(300))*time.Second)
	if g.rng.IntN(3) > 0 {
		setWrapper(m, "loyalty_points_earned", protoreflect.ValueOfInt64(subtotal/100))
	}
	set(m, "payment_attempt", protoreflect.ValueOfUint32(uint32(1+g.rng.IntN(2))))
}

// breaker turns a valid message into one violating rule.
type breaker struct {
	rule  string
	apply func(g *Generator, m protoreflect.Message)
}

var viewStartedBreakers = []breaker{
	{"string.uuid", func(_ *Generator, m protoreflect.Message) { setString(m, "stream_id", "stream-42") }},
	{"enum.defined_only", func(_ *Generator, m protoreflect.Message) {
		set(sub(m, "client"), "platform", protoreflect.ValueOfEnum(99))
	}},
	{"view_started.viewer_matches_anonymous", func(g *Generator, m protoreflect.Message) {
		set(m, "anonymous", protoreflect.ValueOfBool(true))
		setString(m, "viewer_id", g.pick(g.users))
	}},
	{"bytes.len", func(_ *Generator, m protoreflect.Message) {
		set(m, "trace_id", protoreflect.ValueOfBytes([]byte{1, 2, 3, 4, 5, 6, 7, 8}))
	}},
	{"float.gte_lte", func(_ *Generator, m protoreflect.Message) {
		set(m, "dropped_frame_ratio", protoreflect.ValueOfFloat32(1.5))
	}},
	{"required", func(_ *Generator, m protoreflect.Message) { m.Clear(field(m, "occurred_at")) }},
}

var bidPlacedBreakers = []breaker{
	{"string.uuid", func(_ *Generator, m protoreflect.Message) { setString(m, "event_id", "not-a-uuid") }},
	{"bid_placed.amount_positive", func(_ *Generator, m protoreflect.Message) {
		a := sub(m, "amount")
		setInt64(a, "units", 0)
		set(a, "nanos", protoreflect.ValueOfInt32(0))
		m.Clear(field(m, "max_auto_bid"))
	}},
	{"enum.not_in", func(_ *Generator, m protoreflect.Message) {
		setEnum(m, "source", "SOURCE_UNSPECIFIED")
	}},
	{"bid_placed.max_auto_bid_covers_amount", func(_ *Generator, m protoreflect.Message) {
		a := sub(m, "amount")
		ma := sub(m, "max_auto_bid")
		setString(ma, "currency_code", a.Get(field(a, "currency_code")).String())
		setInt64(ma, "units", a.Get(field(a, "units")).Int()-1)
		set(ma, "nanos", protoreflect.ValueOfInt32(0))
	}},
	{"string.email", func(_ *Generator, m protoreflect.Message) { setString(m, "bidder_email", "bidder at example.com") }},
	{"int32.gt_lte", func(_ *Generator, m protoreflect.Message) { set(m, "quantity", protoreflect.ValueOfInt32(0)) }},
	{"required", func(_ *Generator, m protoreflect.Message) {
		m.Clear(field(m, "amount"))
		m.Clear(field(m, "max_auto_bid"))
	}},
}

var orderPaidBreakers = []breaker{
	{"repeated.min_items", func(_ *Generator, m protoreflect.Message) { m.Clear(field(m, "items")) }},
	{"order_paid.total_matches", func(_ *Generator, m protoreflect.Message) {
		t := sub(m, "total")
		setInt64(t, "units", t.Get(field(t, "units")).Int()+1)
	}},
	{"required", func(_ *Generator, m protoreflect.Message) {
		p := sub(m, "payment")
		for _, f := range []string{"card", "wallet", "bank_transfer"} {
			p.Clear(field(p, f))
		}
	}},
	{"uint32.gt", func(_ *Generator, m protoreflect.Message) {
		li := m.Get(field(m, "items")).List().Get(0).Message()
		set(li, "quantity", protoreflect.ValueOfUint32(0))
	}},
	{"string.pattern", func(_ *Generator, m protoreflect.Message) { setString(m, "shipping_country", "france") }},
	{"repeated.unique", func(_ *Generator, m protoreflect.Message) {
		l := m.Mutable(field(m, "coupon_codes")).List()
		l.Append(protoreflect.ValueOfString("SUMMER"))
		l.Append(protoreflect.ValueOfString("SUMMER"))
	}},
}
