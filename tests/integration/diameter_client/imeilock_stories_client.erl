%% Erlang/OTP diameter as a packet core's charging client (CTF / PCEF) of
%% the real imeilockd, driven line by line by diameter_stories_test.py.
%%
%% Reads one Erlang term per line on stdin, answers exactly one line on
%% stdout per command:
%%   {connect, Port, TwMs}.            -> "up Result-Code=2001 Origin-Host=..." (CER/CEA)
%%   {acr, Sid, RecType, Num, Imsi, Imei}.  -> "ACA Result-Code=... Session-Id=... ..."
%%   {ccr, Sid, ReqType, Num, Imsi, Imei}.  -> "CCA Result-Code=... Session-Id=... ..."
%%   watchdog.                         -> "watchdog state=okay dwr_sent=N dwa_recv=N"
%%   disconnect.                       -> "down" (DPR from us, DPA from the daemon)
%%   {wait_down, Ms}.                  -> "down" (the daemon's DPR) or "FAIL ..."
%%   quit.                             -> exits
%% Imei is one of: none | {uei_ascii, Digits} | {uei_hex, Digits15}
%% | {uei_tbcd, Digits} | {uei_mac, Text} | {ti, Imei, Sv} | {imeisv, Digits}
%% | {ps, Imei} (the same inside Service-Information/PS-Information).
%% Every answer line starts with "@@ " (anything else is the VM's logging).
%% The dictionaries are tests/protocols/diameter/erlang/imeilock_{rf,gy}.dia (the
%% interop test's), turned into codecs at start-up in a temporary directory:
%%
%%   erl -noshell -pa TMP -eval '{ok,_} = compile:file(".../imeilock_stories_client",
%%       [{outdir,TMP}]), code:load_abs(TMP ++ "/imeilock_stories_client"),
%%       imeilock_stories_client:main([TMP, DIA_DIR, ORIGIN_HOST, REALM, DEST_REALM])'

-module(imeilock_stories_client).

-export([main/1]).
%% diameter_app callbacks
-export([peer_up/3, peer_down/3, pick_peer/4, prepare_request/3, prepare_retransmit/3,
         handle_answer/4, handle_error/4, handle_request/3]).

-include_lib("diameter/include/diameter.hrl").

-define(SVC, imeilock_stories).

main([Dir, DiaDir, Host, Realm, DestRealm]) ->
    ok = build_dictionaries(Dir, DiaDir),
    put(dest_realm, list_to_binary(DestRealm)),
    put(origin, {Host, Realm}),
    ok = diameter:start(),
    ok = diameter:start_service(?SVC,
           [{'Origin-Host', Host}, {'Origin-Realm', Realm},
            {'Vendor-Id', 0}, {'Product-Name', "erlang-diameter-stories"},
            {'Auth-Application-Id', [4]}, {'Acct-Application-Id', [3]},
            {decode_format, map}, {string_decode, false},
            {application, [{alias, rf}, {dictionary, imeilock_rf}, {module, ?MODULE}]},
            {application, [{alias, gy}, {dictionary, imeilock_gy}, {module, ?MODULE}]}]),
    true = diameter:subscribe(?SVC),
    say("ready"),
    loop(undefined).

%% What diameterc + erlc do, in this VM (one VM start keeps the test short):
%% the .dia dictionaries to codec modules in the temporary directory Dir.
build_dictionaries(Dir, DiaDir) ->
    true = code:add_patha(Dir),
    lists:foreach(
      fun(Name) ->
              ok = diameter_make:codec(filename:join(DiaDir, Name ++ ".dia"),
                                       [{outdir, Dir}, {include, Dir}]),
              {ok, _} = compile:file(filename:join(Dir, Name),
                                     [{outdir, Dir}, {i, Dir}, report]),
              {module, _} = code:load_abs(filename:join(Dir, Name))
      end, ["imeilock_rf", "imeilock_gy"]).

loop(Transport) ->
    case io:get_line(standard_io, "") of
        eof -> halt(0);
        {error, _} -> halt(2);
        Line ->
            T = try command(parse(Line), Transport)
                catch C:E ->
                        say("FAIL exception ~w", [{C, E}]),
                        Transport
                end,
            loop(T)
    end.

parse(Line) ->
    {ok, Toks, _} = erl_scan:string(Line),
    {ok, Term} = erl_parse:parse_term(Toks),
    Term.

command({connect, Port, Tw}, _) ->
    %% An MFA watchdog timer gives exactly Tw (an integer would get +-2 s jitter).
    {ok, T} = diameter:add_transport(?SVC,
                {connect, [{transport_module, diameter_tcp},
                           {transport_config, [{raddr, {127,0,0,1}}, {rport, Port},
                                               {ip, {127,0,0,1}}]},
                           {watchdog_timer, {erlang, abs, [Tw]}},
                           {reconnect_timer, 600000}]}),
    case wait_event(up, 5000) of
        {up, Pkt} ->
            say("up ~s", [fields(msg(Pkt), ['Result-Code', 'Origin-Host', 'Origin-Realm',
                                           'Product-Name'])]),
            T;
        {error, Why} ->
            say("FAIL connect ~w", [Why]),
            T
    end;
command({acr, Sid, RecType, Num, Imsi, Imei}, T) ->
    Msg = maps:merge(#{'Session-Id' => bin(Sid),
                       'Origin-Host' => host(), 'Origin-Realm' => realm(),
                       'Destination-Realm' => get(dest_realm),
                       'Accounting-Record-Type' => RecType, 'Accounting-Record-Number' => Num,
                       'Acct-Application-Id' => 3,
                       'Subscription-Id' => subs(Imsi)}, imei_avps(Imei)),
    call(rf, ['ACR' | Msg], ['Result-Code', 'Session-Id', 'Origin-Host', 'Origin-Realm',
                             'Accounting-Record-Type', 'Accounting-Record-Number',
                             'Acct-Application-Id']),
    T;
command({ccr, Sid, ReqType, Num, Imsi, Imei}, T) ->
    Msg = maps:merge(#{'Session-Id' => bin(Sid),
                       'Origin-Host' => host(), 'Origin-Realm' => realm(),
                       'Destination-Realm' => get(dest_realm),
                       'Auth-Application-Id' => 4,
                       'Service-Context-Id' => <<"32251@3gpp.org">>,
                       'CC-Request-Type' => ReqType, 'CC-Request-Number' => Num,
                       'Subscription-Id' => subs(Imsi)}, imei_avps(Imei)),
    call(gy, ['CCR' | Msg], ['Result-Code', 'Session-Id', 'Origin-Host', 'Origin-Realm',
                             'Auth-Application-Id', 'CC-Request-Type', 'CC-Request-Number']),
    T;
command(watchdog, T) ->
    [Conn | _] = diameter:service_info(?SVC, connections),
    Wd = proplists:get_value(watchdog, Conn),
    Stats = proplists:get_value(statistics, Conn, []),
    say("watchdog state=~w dwr_sent=~w dwa_recv=~w",
        [element(3, Wd), count(Stats, {{0, 280, 1}, send}), count(Stats, {{0, 280, 0}, recv})]),
    T;
command(disconnect, T) ->
    %% RFC 6733 5.4: removing the transport sends DPR and waits for the DPA.
    ok = diameter:remove_transport(?SVC, T),
    case wait_event(down, 5000) of
        down -> say("down");
        {error, Why} -> say("FAIL disconnect ~w", [Why])
    end,
    undefined;
command({wait_down, Ms}, T) ->
    case wait_event(down, Ms) of
        down -> say("down");
        {error, Why} -> say("FAIL wait_down ~w", [Why])
    end,
    T;
command(quit, _) ->
    halt(0);
command(Other, T) ->
    say("FAIL unknown command ~w", [Other]),
    T.

call(App, [Name | Map] = Req, Keys) ->
    Dict = case App of rf -> imeilock_rf; gy -> imeilock_gy end,
    case not_in_grammar(Dict, Name, Map) of
        [] -> call(App, Req, Keys, send);
        Bad -> say("FAIL not in the grammar (the encoder would drop them): ~w", [Bad])
    end.

%% With map messages, diameter silently leaves out keys that the command's
%% grammar lacks: refuse them, so a test never sends less than it thinks.
not_in_grammar(Dict, Name, Map) ->
    lists:append(
      [case Dict:avp_arity(Name, K) of
           0 -> [{Name, K}];
           _ when is_map(V) -> not_in_grammar(Dict, K, V);
           _ -> []
       end || {K, V} <- maps:to_list(Map)]).  % (no map generators before OTP 26)

call(App, Req, Keys, send) ->
    case diameter:call(?SVC, App, Req, [{timeout, 5000}]) of
        [Name | Map] when is_map(Map) ->
            say("~s ~s", [Name, fields([Name | Map], Keys)]);
        {decode_errors, Errs, Msg} ->
            say("FAIL decode_errors ~w ~w", [Errs, Msg]);
        Other ->
            say("FAIL ~w", [Other])
    end.

count(Stats, Key) ->
    lists:sum([N || {K, N} <- Stats, K == Key]).

wait_event(What, Timeout) ->
    receive
        #diameter_event{info = {up, _Ref, _Peer, _Cfg, Pkt}} when What == up -> {up, Pkt};
        #diameter_event{info = {up, _Ref, _Peer, _Cfg}} when What == up -> {up, undefined};
        #diameter_event{info = Info} when What == down, element(1, Info) == down -> down;
        #diameter_event{info = {closed, _, Why, _}} when What == up -> {error, {closed, Why}};
        #diameter_event{} -> wait_event(What, Timeout)
    after Timeout ->
        {error, {no_event, What}}
    end.

msg(#diameter_packet{msg = M}) -> M;
msg(_) -> undefined.

%% "Name=Value ..." for the given AVPs of a decoded message ('-' if absent).
fields([_Name | Map], Keys) when is_map(Map) ->
    string:join([atom_to_list(K) ++ "=" ++ value(maps:get(K, Map, '-')) || K <- Keys], " ");
fields(Other, _) ->
    lists:flatten(io_lib:format("undecoded=~w", [Other])).

value(V) when is_binary(V) -> binary_to_list(V);
value(V) when is_integer(V) -> integer_to_list(V);
value([V]) -> value(V);
value(V) -> lists:flatten(io_lib:format("~w", [V])).

host() -> list_to_binary(element(1, get(origin))).
realm() -> list_to_binary(element(2, get(origin))).

bin(S) when is_list(S) -> list_to_binary(S);
bin(B) when is_binary(B) -> B.

subs(Imsi) ->
    [#{'Subscription-Id-Type' => 1, 'Subscription-Id-Data' => bin(Imsi)},
     #{'Subscription-Id-Type' => 0, 'Subscription-Id-Data' => <<"447700900123">>}].

uei(Type, Value) -> #{'User-Equipment-Info-Type' => Type, 'User-Equipment-Info-Value' => Value}.

%% The IMEI encodings of DESIGN.md 4 / TS 32.299, built here from digits.
imei_avps(none) -> #{};
imei_avps({uei_ascii, D}) -> #{'User-Equipment-Info' => uei(0, bin(D))};
%% TS 32.299: hexadecimal digits in UTF-8, an odd count filled with F.
imei_avps({uei_hex, D}) -> #{'User-Equipment-Info' => uei(0, bin(D ++ "F"))};
imei_avps({uei_tbcd, D}) -> #{'User-Equipment-Info' => uei(0, tbcd(D))};
imei_avps({uei_mac, M}) -> #{'User-Equipment-Info' => uei(1, bin(M))};
imei_avps({ti, Imei, Sv}) ->
    #{'Terminal-Information' => #{'IMEI' => bin(Imei), 'Software-Version' => bin(Sv)}};
imei_avps({imeisv, D}) -> #{'3GPP-IMEISV' => bin(D)};
imei_avps({ps, Inner}) ->
    #{'Service-Information' => #{'PS-Information' => imei_avps(Inner)}}.

%% TBCD (TS 29.002): two digits per octet, the first in the low nibble, F filler.
tbcd([A, B | Rest]) -> <<((B - $0) bsl 4 bor (A - $0)), (tbcd(Rest))/binary>>;
tbcd([A]) -> <<(16#F0 bor (A - $0))>>;
tbcd([]) -> <<>>.

say(Text) -> say(Text, []).
say(Fmt, Args) -> io:format("@@ " ++ Fmt ++ "~n", Args).

%% diameter_app callbacks

peer_up(_Svc, _Peer, State) -> State.
peer_down(_Svc, _Peer, State) -> State.
pick_peer([Peer | _], _, _Svc, _State) -> {ok, Peer};
pick_peer([], _, _Svc, _State) -> false.
prepare_request(Pkt, _Svc, _Peer) -> {send, Pkt}.
prepare_retransmit(Pkt, _Svc, _Peer) -> {send, Pkt}.
handle_answer(#diameter_packet{msg = Msg, errors = []}, _Req, _Svc, _Peer) -> Msg;
handle_answer(#diameter_packet{msg = Msg, errors = Errs}, _Req, _Svc, _Peer) ->
    {decode_errors, Errs, Msg}.
handle_error(Reason, _Req, _Svc, _Peer) -> {error, Reason}.
handle_request(_Pkt, _Svc, _Peer) -> {answer_message, 3001}.
