%% Erlang/OTP diameter as the peer of imeilockd's Diameter front-end (interop
%% test): CER, ACRs and CCRs carrying each IMEI encoding, watchdogs in both
%% directions, DPR from us, then a second connection that waits for the
%% daemon's DPR. Prints one line per check and "failures=N" at the end.
%%
%%   erl -noshell -pa DIR -eval 'imeilock_client:main(["PORT", "PHASE_FILE"])'

-module(imeilock_client).

-export([main/1]).
%% diameter_app callbacks
-export([peer_up/3, peer_down/3, pick_peer/4, prepare_request/3, prepare_retransmit/3,
         handle_answer/4, handle_error/4, handle_request/3]).

-include_lib("diameter/include/diameter.hrl").

-define(SVC, imeilock_client).
-define(HOST, "pgw1.example.net").
-define(REALM, "example.net").

main([PortS, PhaseFile]) ->
    Port = list_to_integer(PortS),
    ok = diameter:start(),
    ok = diameter:start_service(?SVC,
           [{'Origin-Host', ?HOST}, {'Origin-Realm', ?REALM}, {'Vendor-Id', 0},
            {'Product-Name', "erlang-diameter-interop"},
            {'Auth-Application-Id', [4]}, {'Acct-Application-Id', [3]},
            {decode_format, map}, {string_decode, false},
            {application, [{alias, rf}, {dictionary, imeilock_rf}, {module, ?MODULE}]},
            {application, [{alias, gy}, {dictionary, imeilock_gy}, {module, ?MODULE}]}]),
    true = diameter:subscribe(?SVC),
    %% RFC 3539: any message resets the watchdog, so only the side with the
    %% shorter Tw sends DWRs. First connection: ours is exactly 3 s (below the
    %% daemon's 6 s +-2 s), so we send the DWRs and the daemon answers.
    T1 = connect(Port, {timer, seconds, [3]}),
    F1 = charging(),
    timer:sleep(7000),
    F2 = check("after_watchdogs", acr(<<"after.wd">>, 1, "234150000000099",
                                       #{'User-Equipment-Info' => uei(<<"3534900123456789">>)})),
    %% DPR from us (RFC 6733 5.4): remove_transport sends DPR, the daemon answers DPA.
    ok = diameter:remove_transport(?SVC, T1),
    F3 = wait_event(down, 5000),
    %% A second connection that stays up until the daemon sends its DPR at stop().
    %% Second connection: ours is 30 s, so the daemon sends DWRs (after 4-8 s
    %% of silence) and we answer; it stays up until the daemon's DPR at stop().
    _T2 = connect(Port, 30000),
    timer:sleep(9000),
    ok = file:write_file(PhaseFile, <<"ready\n">>),
    F4 = wait_event(down, 30000),
    Failures = F1 + F2 + F3 + F4,
    io:format("failures=~p~n", [Failures]),
    halt(case Failures of 0 -> 0; _ -> 1 end).

connect(Port, Watchdog) ->
    {ok, T} = diameter:add_transport(?SVC,
                {connect, [{transport_module, diameter_tcp},
                           {transport_config, [{raddr, {127,0,0,1}}, {rport, Port}, {ip, {127,0,0,1}}]},
                           {watchdog_timer, Watchdog},
                           {reconnect_timer, 60000}]}),
    case wait_event(up, 5000) of
        0 -> io:format("ok connect~n"), T;
        _ -> io:format("FAIL connect~n"), halt(1)
    end.

wait_event(What, Timeout) ->
    receive
        #diameter_event{info = Info} when What == up, element(1, Info) == up -> 0;
        #diameter_event{info = Info} when What == down, element(1, Info) == down ->
            io:format("ok peer_down~n"), 0;
        #diameter_event{info = {closed, _, {'CEA', Rc, _, _}, _}} ->
            io:format("FAIL cea ~p~n", [Rc]), 1;
        #diameter_event{} -> wait_event(What, Timeout)
    after Timeout ->
        io:format("FAIL no ~p event~n", [What]), 1
    end.

uei(Value) -> #{'User-Equipment-Info-Type' => 0, 'User-Equipment-Info-Value' => Value}.

subs(Imsi) ->
    [#{'Subscription-Id-Type' => 1, 'Subscription-Id-Data' => list_to_binary(Imsi)},
     #{'Subscription-Id-Type' => 0, 'Subscription-Id-Data' => <<"447700900123">>}].

acr(Sid, Num, Imsi, Extra) ->
    Msg = maps:merge(#{'Session-Id' => Sid,
                       'Origin-Host' => ?HOST, 'Origin-Realm' => ?REALM,
                       'Destination-Realm' => <<"localdomain">>,
                       'Accounting-Record-Type' => 2, 'Accounting-Record-Number' => Num,
                       'Acct-Application-Id' => 3,
                       'Subscription-Id' => subs(Imsi)}, Extra),
    {rf, ['ACR' | Msg], Num}.

ccr(Sid, Num, Imsi, Extra) ->
    Msg = maps:merge(#{'Session-Id' => Sid,
                       'Origin-Host' => ?HOST, 'Origin-Realm' => ?REALM,
                       'Destination-Realm' => <<"localdomain">>,
                       'Auth-Application-Id' => 4, 'Service-Context-Id' => <<"32251@3gpp.org">>,
                       'CC-Request-Type' => 1, 'CC-Request-Number' => Num,
                       'Subscription-Id' => subs(Imsi)}, Extra),
    {gy, ['CCR' | Msg], Num}.

%% One ACR/CCR per IMEI encoding; each IMSI tells the encoding apart in the
%% harness's recording (see erlang_interop.sh).
charging() ->
    Tbcd = <<16#53, 16#43, 16#09, 16#10, 16#32, 16#54, 16#76, 16#98>>,
    Ti = #{'IMEI' => <<"353490012345670">>, 'Software-Version' => <<"89">>},
    Cases =
      [{"acr_uei_ascii", acr(<<"s.1">>, 0, "234150000000001", #{'User-Equipment-Info' => uei(<<"3534900123456789">>)})},
       {"acr_uei_hex", acr(<<"s.2">>, 0, "234150000000002", #{'User-Equipment-Info' => uei(<<"353490012345678F">>)})},
       {"acr_uei_tbcd", acr(<<"s.3">>, 0, "234150000000003", #{'User-Equipment-Info' => uei(Tbcd)})},
       {"acr_terminal_information", acr(<<"s.4">>, 0, "234150000000004", #{'Terminal-Information' => Ti})},
       {"acr_3gpp_imeisv", acr(<<"s.5">>, 0, "234150000000005", #{'3GPP-IMEISV' => <<"3534900123456789">>})},
       {"acr_nested_ps_information", acr(<<"s.6">>, 0, "234150000000006",
            #{'Service-Information' => #{'PS-Information' => #{'User-Equipment-Info' => uei(<<"353490012345678F">>)}}})},
       {"acr_no_imei", acr(<<"s.7">>, 0, "234150000000007", #{})},
       {"ccr_uei_ascii", ccr(<<"c.1">>, 0, "234150000000011", #{'User-Equipment-Info' => uei(<<"3534900123456789">>)})},
       {"ccr_uei_tbcd", ccr(<<"c.2">>, 0, "234150000000012", #{'User-Equipment-Info' => uei(Tbcd)})},
       {"ccr_nested_terminal_information", ccr(<<"c.3">>, 0, "234150000000013",
            #{'Service-Information' => #{'PS-Information' => #{'Terminal-Information' => Ti}}})},
       {"ccr_nested_3gpp_imeisv", ccr(<<"c.4">>, 0, "234150000000014",
            #{'Service-Information' => #{'PS-Information' => #{'3GPP-IMEISV' => <<"3534900123456789">>}}})}],
    lists:sum([check(Name, Req) || {Name, Req} <- Cases]).

check(Name, {App, Req, Num}) ->
    case diameter:call(?SVC, App, Req, [{timeout, 5000}]) of
        ['ACA' | #{'Result-Code' := 2001, 'Accounting-Record-Number' := Num,
                   'Accounting-Record-Type' := 2}] ->
            io:format("ok ~s~n", [Name]), 0;
        ['CCA' | #{'Result-Code' := 2001, 'CC-Request-Number' := Num, 'CC-Request-Type' := 1,
                   'Auth-Application-Id' := 4}] ->
            io:format("ok ~s~n", [Name]), 0;
        Other ->
            io:format("FAIL ~s: ~p~n", [Name, Other]), 1
    end.

%% diameter_app callbacks

peer_up(_Svc, _Peer, State) -> State.
peer_down(_Svc, _Peer, State) -> State.
pick_peer([Peer | _], _, _Svc, _State) -> {ok, Peer};
pick_peer([], _, _Svc, _State) -> false.
prepare_request(Pkt, _Svc, _Peer) -> {send, Pkt}.
prepare_retransmit(Pkt, _Svc, _Peer) -> {send, Pkt}.
handle_answer(#diameter_packet{msg = Msg, errors = []}, _Req, _Svc, _Peer) -> Msg;
handle_answer(#diameter_packet{msg = Msg, errors = Errs}, _Req, _Svc, _Peer) -> {decode_errors, Errs, Msg}.
handle_error(Reason, _Req, _Svc, _Peer) -> {error, Reason}.
handle_request(_Pkt, _Svc, _Peer) -> {answer_message, 3001}.
